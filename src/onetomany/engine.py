"""The engine: what a host embeds.

``identify`` and ``track`` only write to the store and return; they never send inline, so they
are safe on a request path. ``tick`` turns stored events into queued touches (one outbox row
per idempotency key), ``dispatch`` sends what is due, and ``run_once`` does a whole round:
sync sources, tick, dispatch.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from onetomany.capacity import CapacityPlan, capacity_from_counts
from onetomany.channels import Channel, Runtime
from onetomany.clock import Clock, SystemClock
from onetomany.compose import Composer
from onetomany.dispatcher import Dispatcher, DispatchReport
from onetomany.errors import ConfigError, ConfigErrors
from onetomany.model import Account, Contact, Event
from onetomany.plugins import Plugins
from onetomany.program import Audience, Program, Touch
from onetomany.reentry import apply_reentry, idempotency_key
from onetomany.retry import RetryPolicy
from onetomany.segments import matching_contact_ids
from onetomany.store import InboxItem, NewTouch, Store
from onetomany.store.store import DELIVERY_EVENT_NAMES
from onetomany.templating import TemplateSet
from onetomany.tiers import TIERS, Tier, TierChange, TierState

log = logging.getLogger(__name__)

EVENT_CURSOR = "triggers:events"


@attrs.frozen(kw_only=True)
class SyncReport:
    source: str
    accounts: int
    contacts: int
    events: int
    new_events: int
    cursor: str | None


@attrs.frozen(kw_only=True)
class BroadcastPlan:
    """Who a broadcast reaches; ``queued`` is 0 for a preview."""

    touch: str
    segment: str
    occurrence: str
    recipients: tuple[Contact, ...]
    already_queued: int
    queued: int

    @property
    def count(self) -> int:
        return len(self.recipients)


@attrs.frozen(kw_only=True)
class RunReport:
    """What one :meth:`Engine.run_once` did."""

    synced: tuple[SyncReport, ...]
    queued: int
    dispatched: DispatchReport


def store_url_for(program: Program) -> str:
    """The program's store URL, a relative SQLite path read from the program's folder."""
    url = program.store_url
    if "://" in url:
        return url
    path = Path(url).expanduser()
    return str(path if path.is_absolute() else program.base_dir / path)


class Engine:
    """Runs one program against one store.

    :param program: what to run (:func:`onetomany.load_program` or built in Python).
    :param store: where state lives; by default the program's own ``store`` setting.
    :param clock: the time source; inject a :class:`~onetomany.FrozenClock` in tests.
    :param plugins: the plugin manager; by default built-ins plus installed entry points.
    :param channels: channel instances that replace (or add to) the program's, by name.
    :param retry: how transient delivery failures are retried; by default the program's.
    :param lease, batch_size, record_every: dispatcher tuning; see
        :class:`~onetomany.dispatcher.Dispatcher`.
    """

    def __init__(
        self,
        program: Program,
        *,
        store: Store | None = None,
        clock: Clock | None = None,
        plugins: Plugins | None = None,
        channels: Mapping[str, Channel] | None = None,
        retry: RetryPolicy | None = None,
        lease: timedelta = timedelta(minutes=5),
        batch_size: int = 200,
        record_every: int = 20,
    ) -> None:
        self.program = program
        self.clock = clock or SystemClock()
        self.plugins = plugins or Plugins()
        self.store = store or Store(store_url_for(program))
        self.templates = TemplateSet(
            program.base_dir / program.templates_dir,
            filters={r.name: r.value for r in self.plugins.template_filters()},
            constants={"constants": dict(program.constants)},
        )
        problems = program.problems(templates=set(self.templates.names()))
        self.channels = self._build_channels(channels or {}, problems)
        if problems:
            raise ConfigErrors(problems)
        self.segments = program.segment_set()
        self.dispatcher = Dispatcher(
            store=self.store,
            composer=Composer(program, self.templates),
            channels=self.channels,
            clock=self.clock,
            plugins=self.plugins,
            retry=retry or program.retry,
            lease=lease,
            batch_size=batch_size,
            record_every=record_every,
        )

    def _build_channels(
        self, overrides: Mapping[str, Channel], problems: list[ConfigError]
    ) -> dict[str, Channel]:
        registry = self.plugins.channels()
        runtime = Runtime(clock=self.clock, store=self.store)
        built: dict[str, Channel] = {}
        for name, settings in self.program.channels.items():
            if name in overrides:
                continue
            key = f"channels.{name}.plugin"
            if settings.plugin not in registry:
                known = ", ".join(registry.names()) or "none"
                problems.append(
                    ConfigError(
                        f"no channel plugin {settings.plugin!r} is installed (installed: {known})",
                        file=self.program.origin,
                        key=key,
                    )
                )
                continue
            try:
                built[name] = registry.get(settings.plugin).value(settings, runtime=runtime)
            except ConfigError as exc:
                problems.append(exc)
        return built | dict(overrides)

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- writing: safe on a request path ----------------------------------------------------

    def identify(self, *profiles: Account | Contact) -> None:
        """Create or update accounts and contacts (validated on construction)."""
        self.store.save_profiles(
            accounts=[p for p in profiles if isinstance(p, Account)],
            contacts=[p for p in profiles if isinstance(p, Contact)],
            now=self.clock.now(),
        )

    def track(
        self,
        event: Event | str,
        *,
        account_id: str | None = None,
        contact_id: str | None = None,
        properties: Mapping[str, Any] | None = None,
        occurred_at: datetime | None = None,
        id: str | None = None,
    ) -> Event:
        """Record an event and return it; sends nothing (``tick`` and ``dispatch`` do).

        Pass an :class:`~onetomany.Event`, or its name and fields. Tracking the same event id
        twice stores it once.
        """
        if isinstance(event, str):
            fields: dict[str, Any] = {
                "name": event,
                "account_id": account_id,
                "contact_id": contact_id,
                "properties": properties or {},
                "occurred_at": occurred_at or self.clock.now(),
            }
            if id is not None:
                fields["id"] = id
            event = Event(**fields)
        self.store.add_events([event], now=self.clock.now())
        return event

    # -- sources ----------------------------------------------------------------------------

    def sync(self, names: Iterable[str] | None = None) -> list[SyncReport]:
        """Pull from the program's sources (all, or those named), each in one transaction."""
        registry = self.plugins.sources()
        reports = []
        for name in names if names is not None else list(self.program.sources):
            settings = self.program.sources.get(name)
            if settings is None:
                raise ConfigError(f"unknown source {name!r}", file=self.program.origin)
            entry = registry.get(settings.plugin, wanted_by=f"sources.{name}.plugin")
            source = entry.value(settings)
            cursor_name = f"source:{name}"
            result = source.sync(cursor=self.store.get_cursor(cursor_name))
            added = self.store.save_profiles(
                accounts=result.accounts,
                contacts=result.contacts,
                events=result.events,
                now=self.clock.now(),
                cursor=(cursor_name, result.cursor) if result.cursor is not None else None,
            )
            reports.append(
                SyncReport(
                    source=name,
                    accounts=len(result.accounts),
                    contacts=len(result.contacts),
                    events=len(result.events),
                    new_events=added,
                    cursor=result.cursor,
                )
            )
        return reports

    # -- deciding ---------------------------------------------------------------------------

    def tick(self, *, batch: int = 1000) -> int:
        """Queue the touches that stored events and time-driven triggers make due.

        Returns the new outbox rows. Progress through the event log is committed with the
        rows it produced, so a crash between the two cannot lose or double a touch;
        time-driven triggers key each firing by what started it (the absence's last event,
        the cadence's date, the unengaged message), so evaluating them again queues nothing
        twice.
        """
        queued = self._queue_events(batch)
        now = self.clock.now()
        for candidates in (self._absence_candidates(now),):
            queued += self._enqueue(candidates, now=now)
        return queued

    def _enqueue(
        self,
        candidates: list[tuple[Touch, NewTouch]],
        *,
        now: datetime,
        cursor: tuple[str, str] | None = None,
    ) -> int:
        """Queue ``candidates`` that their touches' re-entry rules let through."""
        if not candidates and cursor is None:
            return 0
        return self.store.enqueue(apply_reentry(self.store, candidates), now=now, cursor=cursor)

    def _queue_events(self, batch: int) -> int:
        queued = 0
        position = int(self.store.get_cursor(EVENT_CURSOR) or 0)
        while True:
            events = self.store.events_after(position, limit=batch)
            if not events:
                return queued
            touches = [t for _, event in events for t in self._touches_for(event)]
            position = events[-1][0]
            queued += self._enqueue(
                touches, now=self.clock.now(), cursor=(EVENT_CURSOR, str(position))
            )

    def _touches_for(self, event: Event) -> list[tuple[Touch, NewTouch]]:
        due = self.clock.now()
        touches = []
        for touch in self.program.touches_for_event(event):
            if event.properties.get("touch") == touch.name and event.name in DELIVERY_EVENT_NAMES:
                continue  # a touch reacting to its own deliveries would feed itself forever
            touches += [
                (touch, self._new_touch(touch, contact, occurrence=event.id, now=due, event=event))
                for contact in self.audience(touch, event)
            ]
        return touches

    def _new_touch(
        self,
        touch: Touch,
        contact: Contact,
        *,
        occurrence: str,
        now: datetime,
        event: Event | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> NewTouch:
        """The outbox row of ``touch`` for ``contact``, keyed by ``occurrence``."""
        return NewTouch(
            idempotency_key=idempotency_key(self.program.name, touch.name, contact.id, occurrence),
            program=self.program.name,
            touch=touch.name,
            channel=touch.channel,
            template=touch.template,
            contact_id=contact.id,
            account_id=contact.account_id or (event.account_id if event else None),
            event_id=event.id if event else None,
            payload={"event": _event_context(event) if event else None, **(extra or {})},
            available_at=now,
        )

    def _absence_candidates(self, now: datetime) -> list[tuple[Touch, NewTouch]]:
        """Absence touches: one per recipient per absence, found set-based in SQL."""
        touches: list[tuple[Touch, NewTouch]] = []
        for touch, trigger in self.program.absence_touches():
            ids = matching_contact_ids(
                self.store, trigger.condition(), now=now, segments=self.segments
            )
            contacts = sorted(self.store.get_contacts(ids).values(), key=_id)
            groups: dict[str | None, list[Contact]] = {}
            for contact in contacts:
                subject = contact.account_id if trigger.by == "account" else contact.id
                groups.setdefault(subject, []).append(contact)
            latest = self.store.latest_events(
                trigger.event, by=trigger.by, ids=[s for s in groups if s], until=now
            )
            picked: list[tuple[Contact, Event]] = []
            for subject, members in groups.items():
                last = latest.get(subject) if subject else None
                if last is not None:
                    picked += [(c, last) for c in pick(touch.audience, members)]
            # One segment question for every recipient of the touch, not one per account.
            inside = {c.id for c in self._in_segment(touch.segment, [c for c, _ in picked])}
            touches += [
                (
                    touch,
                    self._new_touch(touch, c, occurrence=f"absence-{last.id}", now=now, event=last),
                )
                for c, last in picked
                if c.id in inside
            ]
        return touches

    def audience(self, touch: Touch, event: Event) -> list[Contact]:
        """The contacts ``touch`` goes to for ``event``: its audience rules, then its segment."""
        named = self.store.get_contact(event.contact_id) if event.contact_id else None
        if named is not None and not touch.audience.roles:
            recipients = [named]
        else:
            account_id = event.account_id or (named.account_id if named else None)
            contacts = self.store.contacts_of(account_id) if account_id else []
            recipients = pick(touch.audience, contacts)
        return self._in_segment(touch.segment, recipients)

    def _in_segment(self, segment: str | None, contacts: list[Contact]) -> list[Contact]:
        if segment is None or not contacts:
            return contacts
        inside = set(
            self.segments.matching_contact_ids(
                self.store, segment, now=self.clock.now(), among=[c.id for c in contacts]
            )
        )
        return [c for c in contacts if c.id in inside]

    # -- tiers and capacity -----------------------------------------------------------------

    def update_tiers(self) -> list[TierChange]:
        """Re-tier every account, with hysteresis; each change becomes a ``tier_changed`` event.

        An account moves only after its computed tier has differed from its current one for
        ``[tiers] hold_days`` days in a row; a first assignment moves at once (``from`` is
        empty in its event).
        """
        if not self.program.tiers.rules.rules:
            return []  # a program without tier rules serves everyone alike; nothing to track
        now = self.clock.now()
        tracker = self.program.tiers.tracker
        states = self.store.tier_states()
        updated: dict[str, TierState] = {}
        changes: list[TierChange] = []
        for account in self.store.accounts():
            old = states.get(account.id)
            new, change = tracker.step(old, account, now)
            if new != old:
                updated[account.id] = new
            if change is not None:
                changes.append(change)
        events = [
            Event(
                id=hashlib.sha256(f"tier:{c.account_id}:{c.at.isoformat()}".encode()).hexdigest()[
                    :32
                ],
                name="tier_changed",
                occurred_at=c.at,
                account_id=c.account_id,
                properties={
                    "from": str(c.from_tier) if c.from_tier else None,
                    "to": str(c.to_tier),
                },
            )
            for c in changes
        ]
        if updated:
            self.store.save_tier_states(updated, events=events, now=now)
        return changes

    def tier_counts(self) -> dict[Tier, int]:
        """How many accounts each tier's rules assign right now."""
        counts = dict.fromkeys(TIERS, 0)
        for account in self.store.accounts():
            counts[self.program.tiers.rules.assign(account)] += 1
        return counts

    def capacity_plan(self) -> CapacityPlan:
        """The CSM capacity plan for today's tier mix (``[capacity]`` in the program)."""
        inputs = self.program.tiers.capacity
        if inputs is None:
            raise ConfigError(
                "no capacity inputs: give tiers an hours cost ([tiers.high] hours_per_month) "
                "or add a [capacity] table",
                file=self.program.origin,
                key="capacity",
            )
        return capacity_from_counts(self.tier_counts(), inputs)

    # -- manual broadcast -------------------------------------------------------------------

    def broadcast(
        self,
        touch_name: str,
        *,
        segment: str | None = None,
        occurrence: str | None = None,
        send: bool = False,
    ) -> BroadcastPlan:
        """Send one touch to a segment now, or (``send=False``) only say who would get it.

        Recipients are the segment's contacts (the touch's own segment by default), filtered
        per account by the touch's audience rules. ``occurrence`` names this broadcast in the
        idempotency keys (by default ``broadcast-<today>``), so repeating it reaches nobody
        twice. With ``send=True`` the touches are queued; ``dispatch`` delivers them.
        """
        touch = self.program.touch(touch_name)
        segment = segment or touch.segment
        now = self.clock.now()
        if segment is None:
            raise ConfigError(
                f"broadcasting {touch_name!r} needs a segment: pass one, or give the touch one",
                file=self.program.origin,
                key=f"touches.{touch_name}.segment",
            )
        ids = self.segments.matching_contact_ids(self.store, segment, now=now)
        by_account: dict[str | None, list[Contact]] = {}
        for contact in self.store.get_contacts(ids).values():
            by_account.setdefault(contact.account_id, []).append(contact)
        recipients = sorted(
            (
                c
                for group in by_account.values()
                for c in pick(touch.audience, sorted(group, key=_id))
            ),
            key=_id,
        )
        occurrence = occurrence or f"broadcast-{now.date().isoformat()}"
        touches = apply_reentry(
            self.store,
            [
                (
                    touch,
                    self._new_touch(
                        touch, c, occurrence=occurrence, now=now, extra={"broadcast": occurrence}
                    ),
                )
                for c in recipients
            ],
        )
        known = self.store.existing_keys([t.idempotency_key for t in touches])
        queued = self.store.enqueue(touches, now=now) if send else 0
        return BroadcastPlan(
            touch=touch.name,
            segment=segment,
            occurrence=occurrence,
            recipients=tuple(recipients),
            already_queued=len(known),
            queued=queued,
        )

    # -- sending ----------------------------------------------------------------------------

    def dispatch(self, limit: int | None = None) -> DispatchReport:
        """Send every outbox row due now (at most ``limit``)."""
        return self.dispatcher.dispatch(limit)

    def run_once(self) -> RunReport:
        """Sync every source, then :meth:`step`."""
        synced = tuple(self.sync())
        return attrs.evolve(self.step(), synced=synced)

    def step(self) -> RunReport:
        """One round on what is stored: re-tier accounts, queue what is due, send it.

        :meth:`run_once` is a sync followed by this; the simulator calls it alone, feeding
        the events itself as its clock passes them.
        """
        self.update_tiers()
        queued = self.tick()
        return RunReport(synced=(), queued=queued, dispatched=self.dispatch())

    def run_forever(self, *, interval: float = 60.0, rounds: int | None = None) -> None:
        """Run rounds until interrupted (or ``rounds`` are done), sleeping between them."""
        done = 0
        while rounds is None or done < rounds:
            report = self.run_once()
            done += 1
            log.info("round %d: queued %d, %s", done, report.queued, report.dispatched)
            next_due = self.store.next_due()
            wait = interval
            if next_due is not None:
                wait = min(wait, max(0.0, (next_due - self.clock.now()).total_seconds()))
            self.clock.sleep(wait)

    # -- in-app inbox -----------------------------------------------------------------------

    def inbox(self, contact_id: str, *, unread_only: bool = False) -> list[InboxItem]:
        """A contact's in-app messages, newest first."""
        return self.store.inbox(contact_id, unread_only=unread_only)

    def unread_count(self, contact_id: str) -> int:
        return self.store.unread_count(contact_id)

    def mark_read(self, contact_id: str, item_ids: Iterable[int] | None = None) -> int:
        """Mark items (or all, with ``None``) read; returns how many changed."""
        return self.store.mark_read(contact_id, item_ids, now=self.clock.now())


def pick(audience: Audience, contacts: list[Contact]) -> list[Contact]:
    """Apply an audience's role fallback to one account's ``contacts`` (in a stable order)."""
    if audience.roles:
        for role in audience.roles:
            matching = [c for c in contacts if c.role == role]
            if matching:
                return matching if audience.every else matching[:1]
        return []
    return contacts if audience.every else contacts[:1]


def _id(contact: Contact) -> str:
    return contact.id


def _event_context(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "name": event.name,
        "occurred_at": event.occurred_at.isoformat(),
        "properties": dict(event.properties),
    }
