"""Failover groups and rate-limited channels: one channel name, several providers, in order.

A program may name an ordered group of channels for one channel name::

    [channels.postmark]
    plugin = "postmark"
    server_token = "${POSTMARK_TOKEN}"

    [channels.smtp]
    plugin = "smtp"
    host = "mail.example.com"

    [channels.email]
    providers = ["postmark", "smtp"]
    circuit = { failures = 5, window = 60, cooldown = 30 }
    rate = "50/s"

A touch that says ``channel = "email"`` is sent through the first provider whose circuit is
closed (:mod:`onetomany.delivery.circuit`). What each outcome means:

- accepted: recorded with the provider that took it (``deliveries.provider``);
- a transient failure (:class:`~onetomany.errors.TransientDeliveryError`, a connection error,
  a provider that cannot open): the message goes to the next provider at once; when every
  provider failed, the row is retried by the dispatcher as usual, no sooner than the shortest
  ``Retry-After`` it was given;
- a permanent error (an invalid or suppressed recipient): it stays the outcome; another
  provider would refuse the same address, and the first one did answer;
- an unknown outcome (the request went out, no answer came back): it stays the outcome; the
  first provider may have delivered it, and a second copy through another provider would
  carry another provider's message id, so no provider could drop it.

Transient failures and unknown outcomes count against a provider's circuit; a success closes
it. A channel with a ``rate`` (a group, or a plugin channel) takes tokens before each message
(:mod:`onetomany.delivery.ratelimit`). The dispatcher sees one :class:`~onetomany.Channel`
either way and keeps every retry decision; a group never retries a provider by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs

from onetomany.delivery.channels import Channel, Runtime
from onetomany.delivery.circuit import Circuit
from onetomany.delivery.ratelimit import RateLimiter, buckets_for
from onetomany.delivery.routes import Route
from onetomany.delivery.senders import reason
from onetomany.errors import (
    ConfigError,
    DeliveryDeferred,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnknownOutcomeError,
)
from onetomany.model import DeliveryResult, Message
from onetomany.plugins.settings import PluginSettings

__all__ = ["GROUP_PLUGIN", "Member", "ProviderGroup", "build_routes"]

log = logging.getLogger(__name__)

#: What a group's settings name as their plugin (a group has none of its own).
GROUP_PLUGIN = "failover"

Outcome = DeliveryResult | DeliveryError


@attrs.define
class Member:
    """One provider of a group: its channel name, the channel, and its circuit (none when the
    route has a single provider: with nowhere to fail over to, the dispatcher's backoff is the
    breaker)."""

    name: str
    channel: Channel
    circuit: Circuit | None = None


class ProviderGroup(Channel):
    """One channel name over ordered providers, with an optional rate limit."""

    def __init__(
        self,
        name: str,
        members: Sequence[Member],
        *,
        limiter: RateLimiter | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        if not members:
            raise ValueError(f"channel {name!r}: a group needs at least one provider")
        # A group has no options of its own: its members were built from theirs.
        self.members = list(members)
        self.limiter = limiter
        self.serves = members[0].channel.serves
        self.options = None
        providers: dict[str, Any] = {"providers": [m.name for m in members]}
        self.settings = PluginSettings(name=name, plugin=GROUP_PLUGIN, options=providers)
        self.runtime = runtime or Runtime()
        self._opened: list[Member] = []
        # Batches go to the providers as batches only when every one has a batch API.
        self._batches = all(type(m.channel).send_many is not Channel.send_many for m in members)
        # A repeated key is harmless only if whichever provider gets it drops it.
        vars(self)["deduplicates"] = all(m.channel.deduplicates for m in members)

    @property
    def name(self) -> str:
        return self.settings.name

    def replica(self) -> ProviderGroup:
        """The same providers over connections of their own, sharing this group's circuits
        and rate limit (both thread-safe), so every sender thread sees one provider's state."""
        members = [attrs.evolve(m, channel=m.channel.replica()) for m in self.members]
        return ProviderGroup(self.name, members, limiter=self.limiter, runtime=self.runtime)

    # -- the channel contract -------------------------------------------------------------

    def open(self) -> None:
        # Providers open on first use: a secondary that is never needed is never connected.
        self._opened = []

    def close(self) -> None:
        opened, self._opened = self._opened, []
        for member in opened:
            try:
                member.channel.close()
            except Exception:
                log.exception("channel %r raised while closing", member.name)

    def send(self, message: Message) -> DeliveryResult:
        [outcome] = list(self.send_many([message]))
        if isinstance(outcome, DeliveryError):
            raise outcome
        return outcome

    def send_many(self, messages: Sequence[Message]) -> Iterator[DeliveryResult | DeliveryError]:
        if self.limiter is None and self._batches:
            yield from self._route(list(messages))
            return
        # One message at a time: each after its tokens (a batch call would spend them all at
        # once and overshoot the limit), and each past the circuits as they are then.
        deadline = self.limiter.deadline() if self.limiter is not None else None
        for index, message in enumerate(messages):
            if self.limiter is not None and deadline is not None:
                try:
                    self.limiter.acquire(message, deadline)
                except DeliveryDeferred as deferred:
                    for _ in messages[index:]:
                        yield deferred
                    return
            yield from self._route([message])

    # -- routing ----------------------------------------------------------------------------

    def _route(self, chunk: list[Message]) -> list[Outcome]:
        """One outcome per message of ``chunk``, in order, each from the first provider that
        gave one other than a transient failure."""
        outcomes: list[Outcome | None] = [None] * len(chunk)
        failures: dict[int, list[TransientDeliveryError]] = {}
        skipped: list[Member] = []  # their circuit was open
        todo = list(range(len(chunk)))
        for member in self.members:
            if not todo:
                break
            if member.circuit is not None and not member.circuit.allows():
                skipped.append(member)
                continue
            results = self._through(member, [chunk[i] for i in todo])
            still = []
            for index, outcome in zip(todo, results, strict=True):
                if isinstance(outcome, (DeliveryResult, DeliveryError)):
                    outcome = _tagged(outcome, member.name)
                if isinstance(outcome, TransientDeliveryError):
                    _note(member, failed=True)
                    failures.setdefault(index, []).append(outcome)
                    still.append(index)
                    continue
                # An unknown outcome is a provider that did not answer; a permanent error is
                # one that answered about the recipient.
                _note(member, failed=isinstance(outcome, UnknownOutcomeError))
                outcomes[index] = outcome
            todo = still
        for index in todo:
            outcomes[index] = self._exhausted(failures.get(index, []), skipped)
        return [o for o in outcomes if o is not None]

    def _through(self, member: Member, messages: list[Message]) -> list[Outcome]:
        """``member``'s outcome for each of ``messages``, whatever it raises or yields."""
        if member not in self._opened:
            try:
                member.channel.open()
            except Exception as exc:
                error = TransientDeliveryError(f"could not open: {reason(exc)}")
                return [error] * len(messages)
            self._opened.append(member)
        results: list[Outcome] = []
        while len(results) < len(messages):
            try:
                for outcome in member.channel.send_many(messages[len(results) :]):
                    results.append(_checked(outcome))
                    if len(results) == len(messages):
                        break
                else:
                    missing = len(messages) - len(results)
                    results += [TransientDeliveryError("the channel reported no outcome")] * missing
            except DeliveryError as exc:
                results.append(exc)  # raised rather than yielded: the message in flight
            except Exception as exc:
                log.exception("channel %r raised while sending", member.name)
                # As the dispatcher does: a connection error is worth another try, anything
                # else is a bug that costs this message.
                if isinstance(exc, OSError):
                    results.append(TransientDeliveryError(reason(exc)))
                else:
                    results.append(PermanentDeliveryError(reason(exc)))
        return results

    def _exhausted(
        self, failures: list[TransientDeliveryError], skipped: list[Member]
    ) -> TransientDeliveryError:
        """The outcome of a message no provider took: every one failed or had its circuit open."""
        parts = [f"{e.provider}: {e}" for e in failures]
        waits = [e.retry_after for e in failures if e.retry_after is not None]
        now = self.runtime.clock.now()
        for member in skipped:
            assert member.circuit is not None
            reopens = member.circuit.reopens_at()
            parts.append(f"{member.name}: circuit open until {reopens.isoformat()}")
            waits.append(max(1.0, (reopens - now).total_seconds()))
        error = TransientDeliveryError(
            f"no provider of {self.name!r} took it ({'; '.join(parts)})",
            retry_after=min(waits) if waits else None,
        )
        error.provider = failures[-1].provider if failures else None
        return error


def _note(member: Member, *, failed: bool) -> None:
    if member.circuit is None:
        return
    if failed:
        member.circuit.failed()
    else:
        member.circuit.succeeded()


def _tagged(outcome: Outcome, provider: str) -> Outcome:
    if isinstance(outcome, DeliveryResult):
        return attrs.evolve(outcome, provider=outcome.provider or provider)
    if outcome.provider is None:
        outcome.provider = provider
    return outcome


def _checked(outcome: object) -> Outcome:
    if isinstance(outcome, (DeliveryResult, DeliveryError)):
        return outcome
    # It may have been sent: never retried, never failed over.
    return PermanentDeliveryError(
        f"TypeError: the channel returned {outcome!r:.200}, not a DeliveryResult"
    )


def build_routes(
    routes: Mapping[str, Route],
    channels: Mapping[str, Channel],
    *,
    runtime: Runtime,
    program: str,
) -> tuple[dict[str, Channel], dict[str, Channel], list[ConfigError]]:
    """Wrap ``channels`` (built from their plugins) in their program's ``routes``.

    Returns the channels by name as a program sees them (plugin channels and groups), the
    channels the dispatcher sends through (the same, with each rate-limited plugin channel
    wrapped in its limit), and the problems found (a group whose providers serve different
    kinds). Rate buckets are named ``<program>:<channel>``: shared by every worker of the
    store on PostgreSQL, per process otherwise.
    """
    visible = dict(channels)
    sending = dict(channels)
    problems: list[ConfigError] = []
    buckets = buckets_for(runtime.store)
    for name, route in routes.items():
        limiter = (
            RateLimiter(f"{program}:{name}", route.rate, buckets=buckets, clock=runtime.clock)
            if route.rate is not None
            else None
        )
        if not route.is_group:
            if name in channels and limiter is not None:
                member = Member(name=name, channel=channels[name])
                sending[name] = ProviderGroup(name, [member], limiter=limiter, runtime=runtime)
            continue
        if name in channels:
            continue  # replaced by the host (Engine(channels=...))
        present = [p for p in route.providers if p in channels]
        if len(present) < len(route.providers):
            continue  # a provider that could not be built is reported already
        kinds = {channels[p].serves for p in present}
        if len(kinds) > 1:
            served = ", ".join(f"{p} ({channels[p].serves.value})" for p in present)
            problems.append(
                ConfigError(
                    f"the providers of a group must serve one kind of message: {served}",
                    file=channels[present[0]].settings.origin or None,
                    key=f"channels.{name}.providers",
                )
            )
            continue
        several = len(present) > 1
        members = [
            Member(
                name=p,
                channel=channels[p],
                circuit=Circuit(route.circuit, runtime.clock) if several else None,
            )
            for p in present
        ]
        group = ProviderGroup(name, members, limiter=limiter, runtime=runtime)
        visible[name] = sending[name] = group
    return visible, sending, problems
