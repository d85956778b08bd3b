"""The dispatcher: the only code that makes anything leave the process.

One pass claims due outbox rows (with a short lease, renewed as the batch goes, so a killed
worker's rows come back within about a minute), renders each, hands them to their channel in
one opened session per channel, and records the outcomes every ``record_every`` messages:

- success: the row is ``sent`` and a delivery is recorded;
- :class:`~onetomany.errors.TransientDeliveryError` (or an ``OSError`` a plugin failed to
  map): the row goes back to ``pending`` with its next attempt time, computed by tenacity's
  exponential backoff with jitter and never sooner than the error's ``retry_after``; after
  ``max_attempts`` it is dead-lettered;
- :class:`~onetomany.errors.UnknownOutcomeError` (the request went out, no answer came
  back): the delivery is recorded ``unknown``; the row is sent again (as a retry) only when
  the channel's provider drops repeated idempotency keys (``Channel.deduplicates``) or the
  touch says ``resend_unknown``, otherwise it stays ``unknown``, never dead-lettered and
  never sent twice by the dispatcher;
- :class:`~onetomany.errors.PermanentDeliveryError`, a render failure, or any other exception
  raised while composing, rendering, building or sending that one message: the row is
  dead-lettered with the reason (``TypeName: message`` for an exception the plugin or template
  did not map), and the batch goes on;
- :class:`~onetomany.errors.DeliveryDeferred` (a channel's rate limit had no token for it;
  nothing was sent): the row goes back to ``pending`` until the token is due, not an attempt;
- a channel whose ``open()`` raises: every row of the batch for it goes back to ``pending``
  with the reason, as a failed attempt (so the backoff applies, and a channel that never opens
  ends in the dead letters after ``max_attempts`` rather than being retried for ever).

What is guaranteed (the README and docs/architecture.md say the same): a touch is queued once
per idempotency key and delivered at least once. A message leaves before its outcome is
written, so a crash can send again at most the outcomes not yet written: at most
``record_every`` messages (:data:`DEFAULT_RECORD_EVERY` by default), each carrying the same
Message-ID / provider idempotency key as the first copy, so receivers and providers that honour
keys drop them.

Leases are fenced. Every claim carries a token, every outcome write and lease renewal checks
it, so a worker whose lease ran out changes nothing (it logs the rows it lost and does not send
the ones it has not sent yet). A store that refuses a write (a lock held by another process, a
dropped connection) or cannot be read (the database restarting while a batch's contacts or a
policy's lookups are read) is retried with backoff for ``store_patience`` seconds; then the batch
stops without touching the unsent rows, and the outcomes not yet written are kept and written
first by the next :meth:`Dispatcher.dispatch` call. No row is ever dead-lettered for a store
error.

Before a batch is composed, the engine's send policies (:mod:`onetomany.delivery.policy`)
judge it: a row a policy skips ends ``skipped`` with the reason, one it defers goes back to
``pending`` until the deferral ends; neither counts as an attempt. A policy that raises is a
bug: the batch's rows are left to their lease (as for a store error) and the pass goes on.

Each delivery records the provider that took it (a failover group's member, see
:mod:`onetomany.delivery.failover`; else the channel), counted in ``DispatchReport.by_provider``.

With ``concurrency = N`` each channel's rows are sent by N sender threads, each over its own
connection, started once per :meth:`Dispatcher.dispatch` call (:mod:`onetomany.delivery.senders`);
this thread still claims, judges, composes, records and renews the lease, so every rule above
holds, and a crash can also resend the messages the senders had in flight. It claims the next
batch once at most ``batch_size`` rows of the earlier ones are still unsettled, so the senders
always have work queued while it claims and composes, and no more rows than two batches are
held at once.

Retries are rescheduled in the store rather than slept through in memory: a retry survives a
crash, and one slow recipient never holds up a batch. Every wait is positive, so a row retried
in one :meth:`Dispatcher.dispatch` call is not due again within it.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

import attrs

from onetomany.delivery.channels import Channel
from onetomany.delivery.compose import Composer
from onetomany.delivery.policy import Pending, Policy
from onetomany.delivery.retry import RetryPolicy
from onetomany.delivery.rulings import Judgement, PolicyBug, judge, verdict_decision
from onetomany.delivery.senders import Failed, Senders, outcomes, reason, unit_size
from onetomany.errors import (
    ConfigError,
    DeliveryDeferred,
    DeliveryError,
    OnetomanyError,
    StoreError,
    TransientDeliveryError,
    UnknownOutcomeError,
)
from onetomany.model import Account, Contact, Delivery, DeliveryResult, Message
from onetomany.model.clock import Clock
from onetomany.plugins.manager import Plugins
from onetomany.store import OutboxRow, Outcome, Store
from onetomany.store.queries.decisions import record_decisions
from onetomany.store.queries.rulings import Release, release_claimed

log = logging.getLogger(__name__)

#: How long a claimed row stays with its worker unless renewed; a killed worker's rows are
#: claimable again after this.
DEFAULT_LEASE = timedelta(minutes=1)
#: Outcomes written per transaction, and so the most messages a crash can send twice.
DEFAULT_RECORD_EVERY = 20
#: Seconds a refused store write is retried within one dispatch before the batch stops.
DEFAULT_STORE_PATIENCE = 30.0
#: The name ``DispatchReport.deferred`` counts rows a channel's rate limit put back under.
RATE_LIMIT = "rate limit"

_T = TypeVar("_T")


@attrs.define
class DispatchReport:
    """What one :meth:`Dispatcher.dispatch` did.

    ``sent``, ``retrying``, ``dead`` and ``unknown`` count the messages this call handled (a
    message counts as sent when its channel accepted it, even if its outcome is written by a
    later call; ``unknown`` when it went out and no answer came back, resent or not).
    ``stale`` counts rows another worker took over after this worker's lease ran out: not sent
    by this worker, or sent but not recorded by it. ``unrecorded`` is how many outcomes the
    store refused and are kept in memory for the next call; ``stopped`` says why the call ended
    early, if it did. ``skipped`` and ``deferred`` count the rows the send policies stopped,
    per policy name; ``held`` the rows left to their lease because a policy raised.
    ``by_provider`` counts the sent messages per provider (a failover group's member, else
    the channel); rows a rate limit put back count in ``deferred`` under ``rate limit``.
    """

    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    dead: int = 0
    unknown: int = 0
    stale: int = 0
    unrecorded: int = 0
    stopped: str | None = None
    skipped: dict[str, int] = attrs.field(factory=dict)
    deferred: dict[str, int] = attrs.field(factory=dict)
    held: int = 0
    #: ``skipped`` and ``deferred`` per touch: ``{(touch, policy, "skipped" | "deferred"): rows}``.
    by_touch: dict[tuple[str, str, str], int] = attrs.field(factory=dict)
    by_provider: dict[str, int] = attrs.field(factory=dict)

    def __iadd__(self, other: DispatchReport) -> DispatchReport:
        self.claimed += other.claimed
        self.sent += other.sent
        self.retrying += other.retrying
        self.dead += other.dead
        self.unknown += other.unknown
        self.stale += other.stale
        self.held += other.held
        for mine, theirs in ((self.skipped, other.skipped), (self.deferred, other.deferred)):
            for name, count in theirs.items():
                mine[name] = mine.get(name, 0) + count
        for key, count in other.by_touch.items():
            self.by_touch[key] = self.by_touch.get(key, 0) + count
        for name, count in other.by_provider.items():
            self.by_provider[name] = self.by_provider.get(name, 0) + count
        self.unrecorded = other.unrecorded
        self.stopped = other.stopped or self.stopped
        return self


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class _StoreDown(Exception):
    """The store refused a write, or was out of reach, for longer than the dispatcher's
    patience."""


class Dispatcher:
    """Claims, renders, sends and records outbox rows.

    Delivery is at least once: after a crash, at most ``record_every`` messages (the outcomes
    not yet written) are sent again, with the same Message-ID and provider idempotency key.

    :param channels: channel instances by the name the program gives them.
    :param lease: how long a claimed row stays with this worker before another may take it.
        The dispatcher renews its rows' lease whenever half of it has passed, checking before
        each message, so a long batch keeps its rows and the lease can stay short.
    :param batch_size: rows claimed at once.
    :param record_every: outcomes written to the store in one transaction. After a crash,
        rows sent but not yet recorded are sent again when their lease runs out, so this
        bounds the duplicates a crash can cause (the Message-ID stays the same, so receivers
        can drop them); 1 records every message on its own, at a cost in throughput.
    :param store_patience: seconds (wall time) a store write refused with a
        :class:`~onetomany.errors.StoreError` is retried, with backoff, before the batch stops
        and the unwritten outcomes are kept for the next :meth:`dispatch`.
    :param policies: the send policies every claimed row passes, in order, before it is
        composed (:mod:`onetomany.delivery.policy`).
    :param concurrency: sender threads per channel, each over a connection of its own
        (:mod:`onetomany.delivery.senders`); 0 sends from the dispatching thread itself, one
        message after another. With N, the dispatching thread composes and records while
        the senders wait on the network, and a crash can send again the outcomes not yet
        written plus the messages in flight (at most ``record_every`` + N units).
    """

    def __init__(
        self,
        *,
        store: Store,
        composer: Composer,
        channels: Mapping[str, Channel],
        clock: Clock,
        plugins: Plugins,
        retry: RetryPolicy | None = None,
        lease: timedelta = DEFAULT_LEASE,
        batch_size: int = 200,
        record_every: int = DEFAULT_RECORD_EVERY,
        store_patience: float = DEFAULT_STORE_PATIENCE,
        policies: Sequence[Policy] = (),
        concurrency: int = 0,
    ) -> None:
        if lease <= timedelta(0):
            raise ValueError(f"lease must be positive, not {lease}")
        self.concurrency = _checked_concurrency(concurrency)
        self.store = store
        self.composer = composer
        self.channels = channels
        self.clock = clock
        self.plugins = plugins
        self.retry = retry or RetryPolicy()
        self.lease = lease
        self.batch_size = batch_size
        self.record_every = max(1, record_every)
        self.store_patience = store_patience
        self.policies = tuple(policies)
        self.worker = worker_id()
        #: Outcomes not yet written, oldest first; kept across calls while the store refuses.
        self._unrecorded: list[Outcome] = []
        #: Rows of the current batch with no outcome yet, and their claim tokens.
        self._held: dict[int, str] = {}
        self._renew_at = self.clock.now()
        #: The extra connections of each channel, for sender threads (``Channel.replica``).
        self._replicas: dict[str, list[Channel]] = {}
        #: Rows whose lease was lost while sender threads hold them: not to be sent.
        self._lost: set[int] = set()
        #: Set while a stopped pass hands back what its senders sent: keep, do not write.
        self._keeping = False
        #: What the senders handed back and is not recorded yet.
        self._handed: deque[tuple[OutboxRow, object]] = deque()
        #: Seconds the dispatching thread waits for senders' outcomes before it looks again.
        self._poll = 0.05
        # One pass at a time per dispatcher: the state above belongs to the pass running.
        self._lock = threading.Lock()

    # -- the pass ---------------------------------------------------------------------------

    def dispatch(
        self,
        limit: int | None = None,
        *,
        channels: Collection[str] | None = None,
        concurrency: int | None = None,
    ) -> DispatchReport:
        """Send every row due when the call starts (at most ``limit``; only rows of
        ``channels`` when given; through ``concurrency`` sender threads per channel instead
        of the dispatcher's own setting when given); returns the counts.

        Never raises for one row's failure. If the store refuses writes for longer than
        ``store_patience``, the call stops early, says why in ``stopped`` and keeps the
        outcomes it could not write for the next call. Threads sharing one dispatcher take
        turns; ``concurrency`` sends in parallel within one call.
        """
        threads = self.concurrency if concurrency is None else _checked_concurrency(concurrency)
        with self._lock:
            return self._dispatch(limit, None if channels is None else frozenset(channels), threads)

    def _dispatch(
        self, limit: int | None, channels: frozenset[str] | None, threads: int
    ) -> DispatchReport:
        report = DispatchReport()
        started = self.clock.now()
        senders = (
            Senders(threads, self._connections, skip=self._lost.__contains__) if threads else None
        )
        try:
            try:
                self._flush(report)  # what an earlier call could not write comes first
                while limit is None or report.claimed < limit:
                    if senders is not None:
                        self._await_room(senders, report)
                    size = (
                        self.batch_size
                        if limit is None
                        else min(self.batch_size, limit - report.claimed)
                    )
                    rows = self._patiently(functools.partial(self._claim, size, started, channels))
                    if not rows:
                        break
                    self._dispatch_rows(rows, report, senders)
                if senders is not None:
                    self._drain(senders, report)
            except BaseException:
                if senders is not None:
                    self._halt(senders, report)
                raise
        except _StoreDown as exc:
            report.stopped = str(exc)
            log.error(
                "dispatch stopped: %s; %d outcome(s) kept to write later, unsent rows left "
                "to their lease",
                exc,
                len(self._unrecorded),
            )
        except BaseException:
            # A stop (KeyboardInterrupt, a host's timeout) interrupts the batch: what was sent
            # is recorded if the store takes it at once, else kept for the next call.
            try:
                self._write(list(self._unrecorded), report, patient=False)
            except Exception:
                log.exception("could not record outcomes while stopping")
            raise
        finally:
            self._held.clear()
            self._lost.clear()
            report.unrecorded = len(self._unrecorded)
        return report

    def close(self) -> None:
        """Write the outcomes kept from a call the store stopped, if the store takes them now,
        and close the connections the sender threads used.

        Those it still refuses are lost with the process: their rows come back when their
        lease runs out and are sent again (at most ``record_every`` of them).
        """
        with self._lock:
            replicas = [c for extra in self._replicas.values() for c in extra]
            for channel in replicas:
                try:
                    channel.close()
                except Exception:
                    log.exception("channel %r raised while closing", channel.settings.name)
            if not self._unrecorded:
                return
            try:
                self._write(list(self._unrecorded), DispatchReport(), patient=False)
            except Exception as exc:
                log.error(
                    "closing with %d outcome(s) not recorded (%s); their rows are sent again "
                    "when their lease runs out",
                    len(self._unrecorded),
                    reason(exc),
                )

    def _claim(
        self, size: int, due_by: datetime, channels: frozenset[str] | None
    ) -> list[OutboxRow]:
        return self.store.claim(
            worker=self.worker,
            now=self.clock.now(),
            lease=self.lease,
            limit=size,
            due_by=due_by,
            channels=channels,
        )

    def _dispatch_rows(
        self, rows: Sequence[OutboxRow], report: DispatchReport, senders: Senders | None
    ) -> None:
        report.claimed += len(rows)
        if not (self._held or self._unrecorded):
            self._renew_at = self.clock.now() + self.lease / 2
        # else the rows of earlier batches still held keep the renewal they are due (the
        # new rows' lease runs out later than theirs).
        self._held.update((row.id, row.claim_token or "") for row in rows)
        people = _People(self.store, rows)
        by_channel: dict[str, list[OutboxRow]] = {}
        for row in self._police(rows, report, people):
            by_channel.setdefault(row.channel, []).append(row)
        for name, group in by_channel.items():
            channel = self.channels.get(name)
            if channel is None:
                for row in group:
                    self._finish(row, report, error=f"unknown channel {name!r}", final=True)
                continue
            lost = self._renew_if_due(report)
            group = [row for row in group if row.id not in lost]
            if senders is not None:
                self._feed(senders, name, channel, group, report, people)
                continue
            ready = list(self._compose(channel, group, report, people))
            if ready:
                self._open_and_send(name, channel, ready, report)
        self._flush(report)

    # -- the send policies --------------------------------------------------------------------

    def _police(
        self, rows: Sequence[OutboxRow], report: DispatchReport, people: _People
    ) -> list[OutboxRow]:
        """The rows of the batch the policies let through; the others are skipped or deferred
        in the store. Rows of an unknown channel pass untouched (they are dead-lettered)."""
        judged = [row for row in rows if row.channel in self.channels]
        if not self.policies or not judged:
            return list(rows)
        now = self.clock.now()
        try:
            # The policies only read: judged again from the start while the store is away.
            judgements = self._patiently(
                lambda: judge(self.policies, self._pending(judged, people), now)
            )
        except PolicyBug as exc:
            # A bug, not a verdict: nothing is settled, the rows come back after their lease.
            log.exception("%s; %d row(s) left to their lease", exc, len(rows))
            for row in rows:
                self._held.pop(row.id, None)
            report.held += len(rows)
            return []
        stopped = [j for j in judgements if j.policy is not None]
        if stopped:
            self._release(stopped, report, now)
        passed = {j.pending.row.id for j in judgements if j.policy is None}
        return [row for row in rows if row.id in passed or row.channel not in self.channels]

    def _pending(self, rows: Sequence[OutboxRow], people: _People) -> list[Pending]:
        contacts, accounts = people.read()  # in _police's patient retry
        touches = {touch.name: touch for touch in self.composer.program.touches}
        pending = []
        for row in rows:
            contact = contacts.get(row.contact_id) if row.contact_id else None
            account_id = (contact.account_id if contact else None) or row.account_id
            pending.append(
                Pending(
                    row=row,
                    touch=touches.get(row.touch),
                    kind=self.channels[row.channel].serves,
                    contact=contact,
                    account=accounts.get(account_id) if account_id else None,
                )
            )
        return pending

    def _release(self, stopped: Sequence[Judgement], report: DispatchReport, now: datetime) -> None:
        releases = [
            Release(
                outbox_id=j.pending.row.id,
                claim_token=j.pending.row.claim_token or "",
                reason=j.reason,
                until=j.until,
            )
            for j in stopped
        ]
        stale = self._patiently(lambda: release_claimed(self.store, releases, now=now))
        for judgement in stopped:
            row = judgement.pending.row
            self._held.pop(row.id, None)
            if row.id in stale:
                report.stale += 1
                continue
            counts = report.skipped if judgement.until is None else report.deferred
            name = judgement.policy or ""
            counts[name] = counts.get(name, 0) + 1
            key = (row.touch, name, "skipped" if judgement.until is None else "deferred")
            report.by_touch[key] = report.by_touch.get(key, 0) + 1
            log.info(
                "%s %s: %s",
                "skipped" if judgement.until is None else f"deferred to {judgement.until}",
                row.idempotency_key,
                judgement.reason,
            )
        decisions = [
            d
            for j in stopped
            if j.pending.row.id not in stale
            for d in [verdict_decision(j, now)]
            if d is not None
        ]
        try:
            record_decisions(self.store, decisions)
        except Exception:
            # The record is for people; the rows are already settled.
            log.exception("could not record %d policy decision(s)", len(decisions))

    # -- one row ----------------------------------------------------------------------------

    def _compose(
        self,
        channel: Channel,
        rows: Sequence[OutboxRow],
        report: DispatchReport,
        people: _People,
    ) -> Iterator[tuple[OutboxRow, Message]]:
        """Each row with its message, one at a time (so senders can start on the first);
        a row that cannot be composed is dead-lettered and left out."""
        contacts, accounts = self._patiently(people.read)
        for row in rows:
            try:
                contact = contacts.get(row.contact_id) if row.contact_id else None
                if contact is None:
                    raise DeliveryError(f"contact {row.contact_id!r} is not in the store")
                account_id = contact.account_id or row.account_id
                account = accounts.get(account_id) if account_id else None
                message = self.composer.compose(
                    row, contact=contact, account=account, kind=channel.serves
                )
            except OnetomanyError as exc:
                self._finish(row, report, error=str(exc), final=True)
            except Exception as exc:
                # A bug or an input no check caught: it costs this row, never the batch.
                log.exception("composing %s raised", row.idempotency_key)
                self._finish(row, report, error=reason(exc), final=True)
            else:
                yield row, message

    def _open_and_send(
        self,
        name: str,
        channel: Channel,
        ready: list[tuple[OutboxRow, Message]],
        report: DispatchReport,
    ) -> None:
        try:
            channel.open()
        except Exception as exc:
            # Nothing was sent: the rows go back with the reason, as a failed attempt.
            error = f"channel {name!r} could not open: {reason(exc)}"
            log.error("%s; %d row(s) released", error, len(ready))
            for row, _ in ready:
                self._finish(row, report, error=error)
            return
        try:
            self._send(channel, ready, report)
        finally:
            try:
                channel.close()
            except Exception:
                log.exception("channel %r raised while closing", name)

    def _send(
        self, channel: Channel, ready: list[tuple[OutboxRow, Message]], report: DispatchReport
    ) -> None:
        step = unit_size(channel, self.record_every)
        pending = list(ready)
        while pending:
            self._renew_if_due(report)
            if self._lost:  # lost now, or between two messages of the last unit
                pending = [(row, msg) for row, msg in pending if row.id not in self._lost]
            if not pending:
                break
            unit, pending = pending[:step], pending[step:]
            sent = outcomes(
                channel,
                unit,
                skip=self._lost.__contains__,
                renew=functools.partial(self._renew_if_due, report),
            )
            for row, outcome in sent:
                self._record(channel, row, outcome, report)

    def _feed(
        self,
        senders: Senders,
        name: str,
        channel: Channel,
        rows: Sequence[OutboxRow],
        report: DispatchReport,
        people: _People,
    ) -> None:
        """Compose ``rows`` here and queue them, a unit at a time, for the channel's sender
        threads (:mod:`onetomany.delivery.senders`), recording the outcomes that came back
        meanwhile."""
        step = unit_size(channel, self.record_every)
        unit: list[tuple[OutboxRow, Message]] = []
        for composed in self._compose(channel, rows, report, people):
            unit.append(composed)
            if len(unit) >= step:
                senders.put(name, channel, unit)
                unit = []
                self._take(senders.results(), report)
        if unit:
            senders.put(name, channel, unit)
        self._take(senders.results(), report)

    def _await_room(self, senders: Senders, report: DispatchReport) -> None:
        """Record outcomes until at most ``batch_size`` claimed rows wait for one, so the next
        claim overlaps the senders' work on the rows still queued without claiming more than
        they can send within the lease."""
        while len(self._held) > self.batch_size:
            self._take(senders.results(wait=self._poll), report)
            self._settle_stranded(senders, report)
            if not senders.running:
                return  # nothing more will come back; the held rows stay to their lease

    def _drain(self, senders: Senders, report: DispatchReport) -> None:
        """The call has claimed its last batch: let the senders finish the queued units and
        record every outcome."""
        senders.finish()
        while senders.running:
            self._take(senders.results(wait=self._poll), report)
        senders.join()
        self._take(senders.results(), report)
        self._settle_stranded(senders, report)
        self._flush(report)

    def _settle_stranded(self, senders: Senders, report: DispatchReport) -> None:
        """Rows queued for a channel none of whose senders could open: nothing was sent, so
        they go back as failed attempts, with the reason."""
        for row, error in senders.stranded():
            self._finish(row, report, error=error)

    def _halt(self, senders: Senders, report: DispatchReport) -> None:
        """The store stopped the pass (or the host did): the senders end after the message
        they are sending, and what they sent is kept to be written first next time."""
        senders.stop()
        senders.join()
        self._keeping = True
        try:
            self._take(senders.results(), report)
        finally:
            self._keeping = False

    def _take(self, sent: Sequence[tuple[OutboxRow, object]], report: DispatchReport) -> None:
        """Record what the senders handed back, and renew the lease when it is due; rows
        lost with it are not sent by the senders (they skip them)."""
        # Kept on the dispatcher until recorded: a store that stops the pass mid-way leaves
        # the rest here, for the stopping pass to keep.
        self._handed.extend(sent)
        while self._handed:
            row, outcome = self._handed.popleft()
            if self._keeping and isinstance(outcome, DeliveryDeferred):
                self._held.pop(row.id, None)  # nothing was sent: left to its lease
                continue
            self._record(self.channels[row.channel], row, outcome, report)
        if not self._keeping:
            self._renew_if_due(report)

    def _connections(self, name: str, channel: Channel, threads: int) -> list[Channel]:
        """``channel`` and ``threads - 1`` replicas of it, kept for the next batches."""
        extra = self._replicas.setdefault(name, [])
        while len(extra) < threads - 1:
            try:
                extra.append(channel.replica())
            except Exception:
                log.exception(
                    "channel %r could not make a replica; sending over %d connection(s)",
                    name,
                    len(extra) + 1,
                )
                break
        return [channel, *extra[: threads - 1]]

    def _record(
        self, channel: Channel, row: OutboxRow, outcome: object, report: DispatchReport
    ) -> None:
        provider = row.channel
        if isinstance(outcome, (DeliveryResult, DeliveryError)) and outcome.provider:
            provider = outcome.provider
        if isinstance(outcome, Failed):
            self._finish(row, report, error=outcome.error, final=outcome.final)
        elif isinstance(outcome, DeliveryResult):
            self._save(
                row,
                report,
                "sent",
                provider_message_id=outcome.provider_message_id,
                provider=provider,
            )
        elif isinstance(outcome, UnknownOutcomeError):
            self._unknown(channel, row, outcome, report, provider=provider)
        elif isinstance(outcome, TransientDeliveryError):
            self._finish(
                row,
                report,
                error=str(outcome),
                retry_after=outcome.retry_after,
                provider=provider,
            )
        elif isinstance(outcome, DeliveryDeferred):
            self._defer(row, outcome, report)
        elif isinstance(outcome, DeliveryError):
            self._finish(row, report, error=str(outcome), final=True, provider=provider)
        else:
            # It may have been sent: never retried, dead-lettered with what came back.
            error = f"TypeError: the channel returned {outcome!r:.200}, not a DeliveryResult"
            self._finish(row, report, error=error, final=True)

    def _unknown(
        self,
        channel: Channel,
        row: OutboxRow,
        error: UnknownOutcomeError,
        report: DispatchReport,
        *,
        provider: str | None = None,
    ) -> None:
        """Record a message that went out with no answer; send it again only where a second
        copy is harmless (the provider drops repeated keys) or wanted (the touch says so)."""
        attempt = row.attempts + 1
        if not self._may_resend(channel, row):
            error_text = f"{error} (not sent again)"
            self._save(row, report, "unknown", error=error_text, provider=provider)
        elif attempt >= self.retry.max_attempts:
            error_text = f"gave up after {attempt} attempts: {error}"
            self._save(row, report, "unknown", error=error_text, provider=provider)
        else:
            wait = self.retry.wait(attempt, error.retry_after)
            retry_at = self.clock.now() + timedelta(seconds=wait)
            self._save(
                row, report, "unknown", error=str(error), retry_at=retry_at, provider=provider
            )

    def _defer(self, row: OutboxRow, deferred: DeliveryDeferred, report: DispatchReport) -> None:
        """Put back a row a rate limit held: pending until its token is due, not an attempt."""
        release = Release(
            outbox_id=row.id,
            claim_token=row.claim_token or "",
            reason=str(deferred),
            until=deferred.until,
        )
        now = self.clock.now()
        stale = self._patiently(lambda: release_claimed(self.store, [release], now=now))
        self._held.pop(row.id, None)
        if stale:
            report.stale += 1
            return
        report.deferred[RATE_LIMIT] = report.deferred.get(RATE_LIMIT, 0) + 1
        key = (row.touch, RATE_LIMIT, "deferred")
        report.by_touch[key] = report.by_touch.get(key, 0) + 1

    def _may_resend(self, channel: Channel, row: OutboxRow) -> bool:
        if channel.deduplicates:
            return True
        try:
            return self.composer.program.touch(row.touch).resend_unknown
        except ConfigError:  # a touch the program no longer has
            return False

    def _finish(
        self,
        row: OutboxRow,
        report: DispatchReport,
        *,
        error: str,
        final: bool = False,
        retry_after: float | None = None,
        provider: str | None = None,
    ) -> None:
        attempt = row.attempts + 1
        if final:
            self._save(row, report, "dead", error=error, provider=provider)
        elif attempt >= self.retry.max_attempts:
            error = f"gave up after {attempt} attempts: {error}"
            self._save(row, report, "dead", error=error, provider=provider)
        else:
            wait = self.retry.wait(attempt, retry_after)
            retry_at = self.clock.now() + timedelta(seconds=wait)
            self._save(row, report, "retrying", error=error, retry_at=retry_at, provider=provider)

    def _save(
        self,
        row: OutboxRow,
        report: DispatchReport,
        status: str,
        *,
        error: str | None = None,
        provider_message_id: str | None = None,
        retry_at: datetime | None = None,
        provider: str | None = None,
    ) -> None:
        delivery = Delivery(
            outbox_id=row.id,
            idempotency_key=row.idempotency_key,
            channel=row.channel,
            attempt=row.attempts + 1,
            status=status,
            at=self.clock.now(),
            touch=row.touch,
            contact_id=row.contact_id,
            account_id=row.account_id,
            provider_message_id=provider_message_id,
            error=error,
            provider=provider,
        )
        self._held.pop(row.id, None)
        self._unrecorded.append(
            Outcome(delivery=delivery, claim_token=row.claim_token or "", retry_at=retry_at)
        )
        setattr(report, status, getattr(report, status) + 1)
        if status == "sent" and provider:
            report.by_provider[provider] = report.by_provider.get(provider, 0) + 1
        if status != "sent":
            log.warning("%s %s: %s", status, row.idempotency_key, error)
        if len(self._unrecorded) >= self.record_every and not self._keeping:
            self._flush(report)

    # -- the store ----------------------------------------------------------------------------

    def _renew_if_due(self, report: DispatchReport) -> set[int]:
        """Renew the batch's lease once half of it has passed; returns the rows lost to
        another worker (their lease ran out and they were claimed again), which this worker
        must not send."""
        now = self.clock.now()
        if now < self._renew_at or not (self._held or self._unrecorded):
            return set()
        # Rows sent but not yet recorded are still claimed: their lease is renewed too (a row
        # lost among them is reported when its outcome is refused).
        claims = {o.delivery.outbox_id: o.claim_token for o in self._unrecorded} | self._held
        renewed = self._patiently(lambda: self.store.renew(claims, now=now, lease=self.lease))
        self._renew_at = now + self.lease / 2
        lost = set(self._held) - renewed
        self._lost |= lost  # sender threads skip these if they are still queued
        for row_id in sorted(lost):
            del self._held[row_id]
            report.stale += 1
            log.warning(
                "outbox row %d: the lease ran out and another worker claimed it; not sent here",
                row_id,
            )
        return lost

    def _flush(self, report: DispatchReport) -> None:
        self._write(list(self._unrecorded), report, patient=True)

    def _write(
        self,
        outcomes: list[Outcome],
        report: DispatchReport,
        *,
        patient: bool,
        last_resort: bool = False,
    ) -> None:
        """Write ``outcomes`` (the oldest unrecorded ones) and forget them once written."""
        if not outcomes:
            return
        try:
            if patient:
                stale = self._patiently(lambda: self.store.record_many(outcomes))
            else:
                stale = self.store.record_many(outcomes)
        except (_StoreDown, StoreError):
            raise
        except Exception as exc:
            # Not an unavailable store but an outcome it refuses: write them one by one; one
            # that still fails is written plain (its status, no provider id, the reason), and
            # one refused even so is left to its lease rather than stop every other row.
            if len(outcomes) > 1:
                for outcome in outcomes:
                    self._write([outcome], report, patient=patient)
                return
            [outcome] = outcomes
            index = next(i for i, kept in enumerate(self._unrecorded) if kept is outcome)
            if last_resort:
                log.error(
                    "cannot record %s (%s): %s; the row is sent again when its lease runs out",
                    outcome.delivery.idempotency_key,
                    outcome.delivery.status,
                    reason(exc),
                )
                del self._unrecorded[index]
                return
            problem = f"the outcome could not be recorded as given: {reason(exc)}"
            log.error("%s: %s", outcome.delivery.idempotency_key, problem)
            plain = attrs.evolve(
                outcome,
                delivery=attrs.evolve(
                    outcome.delivery,
                    provider_message_id=None,
                    error=ascii(f"{outcome.delivery.error or ''} ({problem})".strip())[1:-1],
                ),
            )
            self._unrecorded[index] = plain
            self._write([plain], report, patient=patient, last_resort=True)
            return
        done = {id(outcome) for outcome in outcomes}
        self._unrecorded = [o for o in self._unrecorded if id(o) not in done]
        refused = {id(outcome) for outcome in stale}
        for outcome in stale:
            report.stale += 1
            log.warning(
                "outbox row %d (%s): the lease ran out and another worker claimed it; "
                "this worker's outcome (%s) is not recorded",
                outcome.delivery.outbox_id,
                outcome.delivery.idempotency_key,
                outcome.delivery.status,
            )
        for outcome in outcomes:
            if id(outcome) not in refused:
                self.plugins.notify("onetomany_delivery_recorded", delivery=outcome.delivery)

    def _patiently(self, call: Callable[[], _T]) -> _T:
        """``call()``, retried with backoff while the store refuses it (a write, or a read
        while the database is out of reach), for up to
        ``store_patience`` seconds of wall time (a lock held by another process does not
        follow an injected clock)."""
        deadline = time.monotonic() + self.store_patience
        wait = 0.05
        while True:
            try:
                return call()
            except StoreError as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _StoreDown(str(exc)) from exc
                log.warning("store refused a write (%s); trying again", exc)
                time.sleep(min(wait, left))
                wait = min(wait * 2, 2.0)


class _People:
    """The contacts and accounts of one claimed batch, read from the store once, when first
    needed, for the policies and the composer both."""

    def __init__(self, store: Store, rows: Sequence[OutboxRow]) -> None:
        self._store = store
        self._rows = rows
        self._read: tuple[dict[str, Contact], dict[str, Account]] | None = None

    def read(self) -> tuple[dict[str, Contact], dict[str, Account]]:
        if self._read is None:
            rows = self._rows
            contacts = self._store.get_contacts(r.contact_id for r in rows if r.contact_id)
            accounts = self._store.get_accounts(
                {c.account_id for c in contacts.values() if c.account_id}
                | {r.account_id for r in rows if r.account_id}
            )
            self._read = (contacts, accounts)
        return self._read


def _checked_concurrency(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"concurrency must be a whole number of sender threads >= 0, not {value!r}"
        )
    return value
