"""The engine: what a host embeds.

``identify`` and ``track`` only write to the store and return; they never send inline, so they
are safe on a request path. ``tick`` turns stored events into queued touches (one outbox row
per idempotency key), ``dispatch`` sends what is due, and ``run_once`` does a whole round:
sync sources, tick, dispatch.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import attrs

from onetomany.delivery.channels import Channel, Runtime
from onetomany.delivery.compose import Composer
from onetomany.delivery.dispatcher import (
    DEFAULT_LEASE,
    DEFAULT_RECORD_EVERY,
    DEFAULT_STORE_PATIENCE,
    Dispatcher,
    DispatchReport,
    worker_id,
)
from onetomany.delivery.failover import build_routes
from onetomany.delivery.policies import ConsentPolicy, SuppressionPolicy, time_policies
from onetomany.delivery.policy import Policy
from onetomany.delivery.retry import RetryPolicy
from onetomany.errors import ConfigError, ConfigErrors, InputError, InvalidEventError
from onetomany.metrics.events import NPS_ANSWERED
from onetomany.metrics.funnel import ALL_DIMENSIONS, Metrics, measure
from onetomany.metrics.goals import Conversion, conversions
from onetomany.metrics.health import HealthScore
from onetomany.metrics.nps import NpsResults, nps_results
from onetomany.metrics.report import write_report
from onetomany.metrics.timeline import Timeline, build_timeline, machine_zone
from onetomany.model import Account, ChannelKind, Contact, Event
from onetomany.model.clock import Clock, SystemClock
from onetomany.model.decisions import Check, Decision, Outcome, Verdict
from onetomany.ops.lifecycle import PruneReport, prune
from onetomany.plugins.manager import Plugins
from onetomany.plugins.sources import Source
from onetomany.plugins.syncing import OnPage, SyncLease, SyncReport, run_sync
from onetomany.program import Audience, Program, Touch
from onetomany.rules.capacity import CapacityPlan, capacity_from_counts
from onetomany.rules.freshness import needed_sources, stale_reason
from onetomany.rules.journeys import JourneyState, StageChange
from onetomany.rules.retention import DEFAULT_DECISIONS
from onetomany.rules.suppression import Reason, Suppression, normalise_address, read_csv, write_csv
from onetomany.rules.tiers import TIERS, Tier, TierChange, TierState
from onetomany.rules.topics import Answer, Preferences, unknown_topic
from onetomany.rules.triggers import TIER_EVENT, CadenceTrigger
from onetomany.rules.unsubscribe import TokenClaims, make_token, verify_token
from onetomany.store import EventPosition, InboxItem, NewTouch, Store
from onetomany.store.queries import inbox as inbox_q
from onetomany.store.queries.decisions import prune_decisions, record_decisions
from onetomany.store.queries.health import latest_scores, score_history
from onetomany.store.queries.holdouts import record_holdouts
from onetomany.store.queries.journeys import journey_history, journey_states
from onetomany.store.queries.leases import release_lease, take_lease
from onetomany.store.queries.outbox import outbox_row
from onetomany.store.queries.schedules import scheduled_next
from onetomany.store.queries.source_syncs import SourceSyncState, sync_states
from onetomany.store.queries.status import record_tick
from onetomany.store.queries.subscriptions import answers_of, record_answer
from onetomany.store.queries.suppression import (
    add_suppressions,
    all_suppressions,
    remove_suppressions,
)
from onetomany.store.segments import matching_contact_ids
from onetomany.templating import TemplateSet
from onetomany.tracking.cadence import start_schedules
from onetomany.tracking.engagement import engagement_event
from onetomany.tracking.health import update_health
from onetomany.tracking.holdouts import apply_holdouts
from onetomany.tracking.journeys import update_journeys
from onetomany.tracking.reentry import apply_reentry
from onetomany.tracking.segments import SegmentChange, update_segment_members
from onetomany.triggers import KINDS, TickContext, kind_of
from onetomany.triggers.base import Waiting, addressees, in_segment

log = logging.getLogger(__name__)

EVENT_CURSOR = "triggers:events"
#: How long a tick's recorded decisions are kept by default.
DEFAULT_DECISION_RETENTION = DEFAULT_DECISIONS
#: How long one worker's tick holds the program before another may take it over (renewed as
#: the tick goes from one trigger kind to the next).
DEFAULT_TICK_LEASE = timedelta(minutes=2)


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


@attrs.frozen(kw_only=True)
class FromNow:
    """What :meth:`Engine.start_from_now` did."""

    #: The sources' syncs it ran first.
    synced: tuple[SyncReport, ...]
    #: False when the engine had already handled events on this store: then nothing is
    #: skipped, and the other counts are 0.
    applied: bool
    #: Stored events no event trigger will fire for.
    skipped_events: int
    #: Cadence schedules started at their first occurrence after now.
    schedules: int


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
    :param lease, batch_size, record_every, store_patience: dispatcher tuning; see
        :class:`~onetomany.delivery.dispatcher.Dispatcher`.
    :param concurrency: sender threads per channel in ``dispatch``, each over its own
        connection (0 sends from the dispatching thread); by default the program's
        ``[delivery] concurrency`` (0); see :mod:`onetomany.delivery.senders`.

    Delivery is at least once: a touch is queued once per idempotency key, and after a crash
    at most ``record_every`` (20 by default) messages whose outcomes were not yet written are
    sent again, with the same Message-ID and provider idempotency key.
    :param future_tolerance: how far ahead of the clock an event may be dated; ``track``
        refuses one further ahead, and ``sync`` skips it (clocks drift, calendars do not).
    :param policies: the send policies, in order, instead of the program's
        (:meth:`send_policies`).
    :param decision_retention: how long recorded decisions are kept; by default the
        program's ``[retention] decisions`` (30 days).

    **Threads.** One engine may be shared by a web server's request threads: ``identify``,
    ``track``, ``track_engagement`` and the inbox methods (``inbox``, ``inbox_page``,
    ``inbox_counts``, ``mark_read``, ``mark_seen``, ``archive``, ``snooze``, ``click``) each run in
    their own transaction on a connection from the store's pool, and hold no state of their
    own. Concurrent ``identify`` calls of one profile lose no field (on SQLite a write takes
    the database's write lock when it begins; on PostgreSQL the merge locks the rows it reads),
    and an event id tracked from two threads is stored once. Run ``sync``, ``tick`` and
    ``dispatch`` from one worker (on PostgreSQL, any number of ``dispatch`` workers). Build the
    engine in each process, after a pre-forking server forks. Use a SQLite file or PostgreSQL:
    an in-memory SQLite store (``sqlite://``) is a separate, empty database in every thread.
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
        lease: timedelta = DEFAULT_LEASE,
        batch_size: int = 200,
        record_every: int = DEFAULT_RECORD_EVERY,
        store_patience: float = DEFAULT_STORE_PATIENCE,
        future_tolerance: timedelta = timedelta(minutes=5),
        decision_retention: timedelta | None = None,
        tick_lease: timedelta = DEFAULT_TICK_LEASE,
        policies: Sequence[Policy] | None = None,
        concurrency: int | None = None,
    ) -> None:
        if decision_retention is None:
            decision_retention = program.retention.decisions
        if decision_retention <= timedelta(0):
            raise ValueError(f"decision_retention must be positive, not {decision_retention}")
        self.program = program
        self.future_tolerance = future_tolerance
        #: How long the decisions each tick records are kept (``explain`` shows them).
        self.decision_retention = decision_retention
        #: How long a tick holds the program's lease before another worker may take over.
        self.tick_lease = tick_lease
        self._holder = worker_id()
        self.clock = clock or SystemClock()
        self.plugins = plugins or Plugins()
        self.store = store or Store(store_url_for(program))
        self.templates = TemplateSet(
            program.base_dir / program.templates_dir,
            filters={r.name: r.value for r in self.plugins.template_filters()},
            constants={"constants": dict(program.constants)},
            touch_fields=program.touch_fields(),
        )
        problems = program.problems(templates=set(self.templates.names()))
        built = self._build_channels(channels or {}, problems)
        runtime = Runtime(clock=self.clock, store=self.store)
        # Failover groups and rate limits wrap the built channels (delivery/failover.py).
        self.channels, sending, more = build_routes(
            program.routes, built, runtime=runtime, program=program.name
        )
        problems.extend(more)
        if problems:
            raise ConfigErrors(problems)
        self.segments = program.segment_set()
        #: What the last :meth:`tick` decided: one :class:`~onetomany.model.decisions.Decision`
        #: per recipient and occurrence its triggers proposed, queued or skipped, in order.
        self.last_decisions: tuple[Decision, ...] = ()
        self.dispatcher = Dispatcher(
            store=self.store,
            composer=Composer(program, self.templates, clock=self.clock),
            channels=sending,
            clock=self.clock,
            plugins=self.plugins,
            retry=retry or program.retry,
            lease=lease,
            batch_size=batch_size,
            record_every=record_every,
            store_patience=store_patience,
            policies=self.send_policies() if policies is None else policies,
            concurrency=program.concurrency if concurrency is None else concurrency,
        )

    def send_policies(self) -> list[Policy]:
        """The policies every claimed outbox row passes before it is composed, in order:
        suppression, consent (topics), then the time and frequency policies."""
        return [
            SuppressionPolicy(self.store),
            ConsentPolicy(self.store, self.program.topics),
            *time_policies(self.program, self.store, self.templates, self.segments),
        ]

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
            except ConfigErrors as exc:
                problems.extend(exc.errors)
            except ConfigError as exc:
                problems.append(exc)
        return built | dict(overrides)

    def close(self) -> None:
        self.dispatcher.close()
        for channel in self.channels.values():
            channel.close()
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- writing: safe on a request path ----------------------------------------------------

    def identify(self, *profiles: Account | Contact) -> None:
        """Create or update accounts and contacts, changing only the fields each one gives.

        Call it from wherever the host learns something, with just what it knows (as with
        Segment's identify): ``identify(Contact(id="c1", traits={"seats": 9}))`` sets one
        trait and keeps the contact's email, role, locale, consent and other traits.

        - A field not passed to :class:`~onetomany.Contact` / :class:`~onetomany.Account`
          keeps its stored value; a new profile gets the field's default (locale ``"en"``,
          timezone ``"UTC"``, no email, ...).
        - ``None`` clears ``account_id``, ``email``, ``phone`` or ``role``.
        - ``traits`` merge key by key; a trait given as ``None`` is removed.
        - ``consent`` merges channel by channel.

        Profiles are validated on construction; the merge happens in the store, in one
        transaction that reads and locks the stored rows, so concurrent calls lose nothing.
        Sources' syncs merge the same way.
        """
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
        twice stores it once. An event dated more than ``future_tolerance`` ahead of the clock
        raises :class:`~onetomany.errors.InvalidEventError`: a trigger cannot wait for it, and
        it would count as the latest activity long before it happened.
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
        now = self.clock.now()
        if self._from_the_future(event, now):
            raise InvalidEventError(
                f"event {event.name!r} ({event.id}): occurred_at {event.occurred_at.isoformat()} "
                f"is ahead of the engine's clock ({now.isoformat()}) by more than "
                f"{self.future_tolerance}"
            )
        self.store.add_events([event], now=now)
        return event

    def track_engagement(
        self,
        idempotency_key: str,
        kind: str = "opened",
        *,
        at: datetime | None = None,
        id: str | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> Event:
        """Record that the message keyed ``idempotency_key`` was ``"opened"`` or ``"clicked"``.

        Call it from a provider's webhook or a tracking pixel or link handler. The event
        (``message_opened`` / ``message_clicked``) names the row's contact, account, touch and
        channel, and stops the escalation ladders waiting on the message. ``id`` (the
        provider's event id) makes a redelivered webhook count once. An unknown key is an
        InputError naming it, and nothing is stored. ``properties`` go on the event:
        ``{"machine": True}`` marks an open made by a machine (a privacy proxy), which is
        kept and counted apart but stops no ladder.
        """
        now = self.clock.now()
        return engagement_event(
            self.store, idempotency_key, kind, at=at or now, now=now, id=id, properties=properties
        )

    def _from_the_future(self, event: Event, now: datetime) -> bool:
        return event.occurred_at > now + self.future_tolerance

    # -- sources ----------------------------------------------------------------------------

    def source(self, name: str) -> Source:
        """The program's source ``name``, built by its plugin (nothing is read yet)."""
        settings = self.program.sources.get(name)
        if settings is None:
            raise ConfigError(f"unknown source {name!r}", file=self.program.origin)
        entry = self.plugins.sources().get(settings.plugin, wanted_by=f"sources.{name}.plugin")
        return entry.value(settings)

    def sync(
        self,
        names: Iterable[str] | None = None,
        *,
        full: bool = False,
        on_page: OnPage | None = None,
    ) -> list[SyncReport]:
        """Pull from the program's sources (all, or those named), a page at a time.

        Each page is stored in one transaction with the source's cursor, so a failed sync
        keeps the pages it stored and the next one resumes after them (see
        :mod:`onetomany.plugins.syncing`). ``full`` ignores the stored cursors; ``on_page``
        is called after each page with the sync's progress. Events dated further ahead of
        the clock than ``future_tolerance`` are skipped with a warning and counted in
        :attr:`SyncReport.skipped_future`; the source's cursor then stays where it was,
        because a time cursor moved to the skipped event's date would hide every event the
        source receives before that date.

        Several workers may call it at once: each source is synced by one worker at a time
        (a lease per source); a worker that finds a source busy skips it with a warning and
        returns a report with ``busy`` set.
        """
        return [
            run_sync(
                self.store,
                name,
                self.source(name),
                now=self.clock.now,
                is_future=self._from_the_future,
                full=full,
                on_page=on_page,
                identity=self.program.identity.get(name, ()),
                lease=SyncLease(self._holder),
            )
            for name in (names if names is not None else list(self.program.sources))
        ]

    # -- deciding ---------------------------------------------------------------------------

    def tick(self, *, batch: int = 1000) -> int:
        """Queue the touches that stored events and time-driven triggers make due.

        Returns the new outbox rows; :attr:`last_decisions` holds every decision behind them
        (and those skipped). Each trigger kind (:data:`onetomany.triggers.KINDS`) proposes
        candidates and the touch's re-entry rule settles them. Progress through the event log
        is committed with the rows it produced, so a crash between the two cannot lose or
        double a touch; time-driven triggers key each firing by what started it (the
        absence's last event, the cadence's date, the unengaged message), so evaluating them
        again queues nothing twice.

        Several workers may call it at once: one holds the program's lease (``tick_lease``,
        renewed from one trigger kind to the next) and the others return 0 for this round. A
        worker that dies holds it only until the lease runs out.
        """
        lease = f"tick:{self.program.name}"
        if not take_lease(self.store, lease, self._holder, ttl=self.tick_lease):
            log.info("%s: another worker holds this round; skipped here", lease)
            self.last_decisions = ()
            return 0
        started = time.monotonic()
        try:
            queued = self._tick(batch, lease)
        finally:
            release_lease(self.store, lease, self._holder)
        # For `onetomany status` and the Prometheus gauge: how long the last round took.
        record_tick(
            self.store,
            self.program.name,
            at=self.clock.now(),
            seconds=time.monotonic() - started,
            queued=queued,
        )
        return queued

    def _tick(self, batch: int, lease: str) -> int:
        decisions: list[Decision] = []
        queued = self._queue_events(batch, decisions)
        now = self.clock.now()
        context = self._context()
        for kind in KINDS:
            touches = self.program.touches_of(kind.trigger)
            if kind.reads_events or not touches:
                continue
            if not take_lease(self.store, lease, self._holder, ttl=self.tick_lease):
                # Held past its lease: another worker has taken the round over.
                log.warning("%s: the lease ran out mid-round; another worker goes on", lease)
                break
            found = kind.candidates(context, touches, now)
            queued += self._enqueue(found.decisions, now=now, into=decisions, kept=found.cursors)
            if found.after_queued is not None:
                # Only after the occurrences are queued: a crash before this re-fires them.
                found.after_queued()
        self.last_decisions = tuple(decisions)
        held = [d for d in decisions if d.checks and d.checks[-1].name == "freshness" and d.reason]
        if held:
            log.warning(
                "held %d touch(es) (%s) because their data is stale: %s",
                len(held),
                ", ".join(sorted({d.touch for d in held})),
                "; ".join(sorted({d.reason or "" for d in held})),
            )
        record_decisions(self.store, decisions)
        if self.program.retention.archive is None:
            # With an archive folder, only prune() removes decisions: it archives them first.
            prune_decisions(self.store, before=now - self.decision_retention)
        return queued

    def decide(self, touch_name: str, contact_ids: Iterable[str]) -> list[Decision]:
        """What a tick at the clock's now would decide about ``touch_name`` for
        ``contact_ids``, without writing anything: a dry run of the same code.

        The touch's trigger kind proposes its candidates as :meth:`tick` would have it (an
        event-driven kind over every event the tick has not handled yet), the touch's re-entry
        rule settles them, and a queued decision whose key the outbox already holds is
        skipped with an ``outbox`` check: the tick would add no row for it. Only the
        decisions about ``contact_ids`` are returned. ``explain`` displays these.
        """
        touch = self.program.touch(touch_name)
        if touch.trigger is None:
            return []
        kind = kind_of(touch.trigger)
        wanted = set(contact_ids)
        now = self.clock.now()
        events: list[Event] = []
        if kind.reads_events:
            position = EventPosition.parse(self.store.get_cursor(EVENT_CURSOR))
            while batch := self.store.events_after(position, limit=1000):
                events += [e for _, e in batch]
                position = batch[-1][0]
        context = attrs.evolve(self._context(events), dry=True)
        found = kind.candidates(context, [(touch, touch.trigger)], now).decisions
        return self._settle({touch.name: touch}, [d for d in found if d.contact_id in wanted])

    def waiting(self, touch_name: str, contact: Contact) -> Waiting | None:
        """What ``touch_name``'s trigger waits for before it proposes the touch to
        ``contact`` (for a contact :meth:`decide` finds no decision for); None for a touch
        without a trigger (only a broadcast sends it)."""
        touch = self.program.touch(touch_name)
        if touch.trigger is None:
            return None
        kind = kind_of(touch.trigger)
        context = attrs.evolve(self._context(), dry=True)
        return kind.waiting(context, touch, touch.trigger, contact, self.clock.now())

    def skip_stored_events(self) -> int:
        """Treat every event stored so far as handled: no event trigger fires for them.

        For loading history (a backfill; the simulator's events before its range): segments
        and time-driven triggers still see the events. Returns how many were skipped.
        Adopting a program on existing data is :meth:`start_from_now`, which does this and
        more.
        """
        position, skipped = self._read_through()
        if skipped:
            self.store.enqueue([], now=self.clock.now(), cursor=(EVENT_CURSOR, str(position)))
        return skipped

    def has_handled_events(self) -> bool:
        """Whether the event triggers have already run over this store's events (a
        :meth:`tick` that found events, or :meth:`skip_stored_events`)."""
        return self.store.get_cursor(EVENT_CURSOR) is not None

    def unhandled_events(self) -> int:
        """How many stored events the next :meth:`tick` hands to the event triggers (it
        reads them through: meant for a first round, not for every one)."""
        return self._read_through()[1]

    def _read_through(self) -> tuple[EventPosition, int]:
        """The position of the last stored event, and how many follow the event cursor."""
        position = EventPosition.parse(self.store.get_cursor(EVENT_CURSOR))
        count = 0
        while events := self.store.events_after(position, limit=1000):
            position = events[-1][0]
            count += len(events)
        return position, count

    def start_from_now(self) -> FromNow:
        """Adopt the program on data that already has a history: what the store and the
        sources hold now is the past, and only what happens from now on is news.

        For a store the engine has not handled events on yet (call it before the first
        round; ``onetomany run --from-now``). It syncs every source, then:

        * **event triggers** (``event``, and the journey's ``stage`` moves): every stored
          event counts as handled, including the tier and journey moves the current data
          implies, which are worked out first (a long-standing customer is placed at its
          stage without being "welcomed" or "congratulated" for it). Events stored later
          fire as usual.
        * **cadences**: each schedule starts at the rule's first occurrence after now; none
          before it is caught up (no NPS because the account signed up a year ago).
        * **segment, absence and engagement triggers** are about the present and keep
          working on the current state: a contact in a segment when it is first evaluated
          enters it, an absence that has lasted its days fires once, as they would for a
          touch added to a running program. Each fires once per state (its re-entry rule),
          and what it says is true today. Engagement only counts messages this engine sent.

        On a store where events were already handled it does nothing but sync (a restart
        keeps the events that arrived meanwhile), and says so with ``applied=False``.
        """
        synced = tuple(self.sync())
        if self.has_handled_events():
            return FromNow(synced=synced, applied=False, skipped_events=0, schedules=0)
        self.update_tiers()
        self.update_journeys()
        skipped = self.skip_stored_events()
        now = self.clock.now()
        schedules = sum(
            start_schedules(self.store, touch, trigger, now=now, choose=pick, from_now=True)
            for touch, trigger in self.program.touches_of(CadenceTrigger)
        )
        return FromNow(synced=synced, applied=True, skipped_events=skipped, schedules=schedules)

    def _context(self, events: Iterable[Event] = ()) -> TickContext:
        return TickContext(
            program=self.program, store=self.store, segments=self.segments, events=tuple(events)
        )

    def _enqueue(
        self,
        candidates: Iterable[Decision],
        *,
        now: datetime,
        into: list[Decision],
        cursor: tuple[str, str] | None = None,
        kept: Sequence[tuple[str, str, str]] = (),
    ) -> int:
        """Settle ``candidates`` (:meth:`_settle`, adding them to ``into``) and queue those
        it lets through, with ``cursor`` and the ``kept`` cursors of a time-driven kind
        (``(touch, name, value)``; dropped for a touch the freshness guard held)."""
        touches = self._touches
        settled = self._settle(touches, candidates)
        into += settled
        # Before the rows and their cursor: a crash in between re-reads the events, and the
        # control group's rows are kept once per key.
        record_holdouts(self.store, settled)
        rows = [self._row(d, touches[d.touch]) for d in settled if d.outcome is Outcome.QUEUED]
        held = {
            d.touch
            for d in settled
            if any(c.name == "freshness" and c.verdict is Verdict.FAIL for c in d.checks)
        }
        cursors = [(name, value) for touch, name, value in kept if touch not in held]
        if not rows and cursor is None and not cursors:
            return 0
        return self.store.enqueue(rows, now=now, cursor=cursor, cursors=cursors)

    def _settle(
        self, touches: Mapping[str, Touch], candidates: Iterable[Decision]
    ) -> list[Decision]:
        """``candidates`` settled by their touches' re-entry rules; a queued one whose key the
        outbox already holds is skipped with an ``outbox`` check (the outbox's unique key would
        drop its row anyway); one whose recipient is in its touch's control group becomes a
        ``holdout`` decision."""
        settled = apply_reentry(self.store, touches, self._hold_stale(touches, candidates))
        known = self.store.existing_keys(
            d.idempotency_key for d in settled if d.outcome is Outcome.QUEUED
        )
        if known:
            settled = [
                d.skipped(Check.failed("outbox", f"the outbox already holds {d.idempotency_key}"))
                if d.outcome is Outcome.QUEUED and d.idempotency_key in known
                else d
                for d in settled
            ]
        return apply_holdouts(self.program, settled)

    def _hold_stale(
        self, touches: Mapping[str, Touch], candidates: Iterable[Decision]
    ) -> list[Decision]:
        """``candidates`` with the freshness guard applied: a touch that needs a source whose
        data is stale (or whose last sync failed) is skipped with a ``freshness`` check
        (:mod:`onetomany.rules.freshness`)."""
        freshness = self.program.freshness
        decisions = list(candidates)
        if not freshness:
            return decisions
        now = self.clock.now()
        states: dict[str, SourceSyncState] | None = None
        guarded = []
        for decision in decisions:
            touch = touches[decision.touch]
            needed = needed_sources(
                touch.needs, absence=decision.trigger == "absence", freshness=freshness
            )
            if decision.settled or not needed:
                guarded.append(decision)
                continue
            if states is None:
                states = sync_states(self.store)
            stale = [
                why
                for name in needed
                if (why := stale_reason(name, freshness[name], states.get(name), now=now))
            ]
            if stale:
                check = Check.failed("freshness", "; ".join(stale), sources=needed)
                guarded.append(decision.skipped(check))
            else:
                fresh = f"fresh: {', '.join(needed)}"
                guarded.append(decision.check(Check.passed("freshness", fresh, sources=needed)))
        return guarded

    @property
    def _touches(self) -> dict[str, Touch]:
        return {t.name: t for t in self.program.touches}

    def _row(self, decision: Decision, touch: Touch) -> NewTouch:
        """The outbox row of a queued decision of ``touch``."""
        return NewTouch(
            idempotency_key=decision.idempotency_key,
            program=decision.program,
            touch=touch.name,
            channel=touch.channel,
            template=touch.template,
            contact_id=decision.contact_id,
            account_id=decision.account_id,
            event_id=decision.event_id,
            payload=decision.payload,
            available_at=decision.at,
        )

    def _queue_events(self, batch: int, into: list[Decision]) -> int:
        """The event-driven kinds, one batch of the event log at a time, each batch's rows
        queued with the log's cursor."""
        kinds = [(k, self.program.touches_of(k.trigger)) for k in KINDS if k.reads_events]
        order = {t.name: index for index, t in enumerate(self.program.touches)}
        queued = 0
        position = EventPosition.parse(self.store.get_cursor(EVENT_CURSOR))
        while True:
            events = self.store.events_after(position, limit=batch)
            if not events:
                return queued
            now = self.clock.now()
            context = self._context(e for _, e in events)
            found = [
                d
                for kind, touches in kinds
                if touches
                for d in kind.candidates(context, touches, now).decisions
            ]
            # As the log has them, then in the program's order of touches.
            at = {event.id: index for index, (_, event) in enumerate(events)}
            found.sort(key=lambda d: (at[d.event_id or ""], order[d.touch]))
            position = events[-1][0]
            queued += self._enqueue(found, now=now, into=into, cursor=(EVENT_CURSOR, str(position)))

    def next_due(self, touch_name: str, contact_id: str) -> datetime | None:
        """When cadence touch ``touch_name`` is next due for ``contact_id`` (UTC).

        None when the contact has no schedule for it (yet: the next ``tick`` starts one once
        the anchor event is stored) or its rule is exhausted. A time in the past means a tick
        has not run since it came due.
        """
        touch = self.program.touch(touch_name)
        if not isinstance(touch.trigger, CadenceTrigger):
            raise ConfigError(
                f"touch {touch_name!r} has no cadence trigger ({touch.trigger!r})",
                file=self.program.origin,
                key=f"touches.{touch_name}.trigger",
            )
        return scheduled_next(self.store, touch_name, contact_id)

    def audience(self, touch: Touch, event: Event) -> list[Contact]:
        """The contacts ``touch`` goes to for ``event``: its audience rules, then its segment."""
        return self._in_segment(touch.segment, self.addressees(touch, event))

    def addressees(self, touch: Touch, event: Event) -> list[Contact]:
        """The contacts ``touch``'s audience rules pick for ``event``, before its segment."""
        return addressees(self.store, touch, event)

    def _in_segment(self, segment: str | None, contacts: list[Contact]) -> list[Contact]:
        return in_segment(self.store, self.segments, segment, contacts, now=self.clock.now())

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
        # A tier's ``health`` minimum reads the latest score, handed over as a trait.
        scores = latest_scores(self.store, at=now) if self.program.health.measures else {}
        for account in self.store.accounts():
            if account.id in scores:
                traits = {**account.traits, "health": scores[account.id]}
                account = attrs.evolve(account, traits=traits)
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
                name=TIER_EVENT,
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

    def update_health(self) -> dict[str, float]:
        """Score every account by the program's ``[health]`` measures at the clock's now and
        keep the scores (one per account per day: a later round replaces the day's), so
        ``health()`` and ``health_trend(N)`` in segments and tiers read them. Returns the
        scores by account id; nothing without measures."""
        return update_health(
            self.store,
            self.program.health,
            now=self.clock.now(),
            segments=self.segments,
            nps_event=NPS_ANSWERED,
        )

    def health(self, account_id: str, *, days: int | None = None) -> list[HealthScore]:
        """An account's health scores, oldest first (the last ``days`` days, or all)."""
        since = self.clock.now() - timedelta(days=days) if days is not None else None
        return [
            HealthScore(at=at, score=score, measures=measures)
            for at, score, measures in score_history(self.store, account_id, since=since)
        ]

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

    # -- segments and journeys --------------------------------------------------------------

    def update_segments(self) -> list[SegmentChange]:
        """Record who entered or left the segments that segment triggers watch.

        Each crossing becomes a ``segment_entered`` or ``segment_left`` event, which the next
        :meth:`tick` turns into touches. The first evaluation of a segment counts its current
        members as entering.
        """
        return update_segment_members(
            self.store,
            self.segments,
            self.program.watched_segments(),
            now=self.clock.now(),
        )

    def update_journeys(self) -> list[StageChange]:
        """Move accounts through the program's journeys; each step becomes a stage event.

        Events are ``stage_entered``, ``stage_completed`` and ``stage_overdue``, with the
        journey, stage and entry id in their properties (docs/journeys.md). A round after
        the first looks only at the accounts with something new (docs/journeys.md, "What a
        round reads").
        """
        if not self.program.journeys:
            return []
        return update_journeys(
            self.store,
            self.program.journeys.values(),
            now=self.clock.now(),
            segments=self.segments,
            program=self.program.name,
        )

    def journey_states(self, account_id: str) -> list[JourneyState]:
        """The stage ``account_id`` is in for each journey it has entered."""
        return journey_states(self.store, account_id)

    def journey_history(self, account_id: str, journey: str | None = None) -> list[StageChange]:
        """Every stage ``account_id`` entered, completed or overran, oldest first."""
        return journey_history(self.store, account_id, journey)

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
        ids = matching_contact_ids(
            self.store, self.segments.expr(segment), now=now, segments=self.segments
        )
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
        context = self._context()
        decisions = apply_reentry(
            self.store,
            self._touches,
            [
                context.decision(
                    "broadcast",
                    touch,
                    c,
                    occurrence=occurrence,
                    now=now,
                    payload={"broadcast": occurrence},
                )
                for c in recipients
            ],
        )
        decisions = apply_holdouts(self.program, decisions)
        touches = [self._row(d, touch) for d in decisions if d.outcome is Outcome.QUEUED]
        known = self.store.existing_keys([t.idempotency_key for t in touches])
        if send:
            record_holdouts(self.store, decisions)
        queued = self.store.enqueue(touches, now=now) if send else 0
        return BroadcastPlan(
            touch=touch.name,
            segment=segment,
            occurrence=occurrence,
            recipients=tuple(recipients),
            already_queued=len(known),
            queued=queued,
        )

    # -- the data lifecycle -----------------------------------------------------------------

    def prune(self, *, archive: Path | None = None, dry_run: bool = False) -> PruneReport:
        """Archive and remove what the program's ``[retention]`` lets go, never what a
        trigger still needs (the rule: :mod:`onetomany.ops.lifecycle`).

        ``archive`` is the folder the gzip'd JSON lines go to before rows are removed (by
        default the program's ``retention.archive``, relative to the program; none: rows are
        removed unarchived). ``dry_run`` only counts.
        """
        if archive is None and self.program.retention.archive is not None:
            archive = self.program.base_dir / self.program.retention.archive
        program = attrs.evolve(
            self.program,
            retention=attrs.evolve(self.program.retention, decisions=self.decision_retention),
        )
        return prune(
            program,
            self.store,
            now=self.clock.now(),
            through=EventPosition.parse(self.store.get_cursor(EVENT_CURSOR)),
            archive=archive,
            dry_run=dry_run,
        )

    # -- sending ----------------------------------------------------------------------------

    def dispatch(
        self,
        limit: int | None = None,
        *,
        channels: Collection[str] | None = None,
        concurrency: int | None = None,
    ) -> DispatchReport:
        """Send every outbox row due now (at most ``limit``; only rows of the program's
        ``channels`` when given, so each channel can have workers of its own; through
        ``concurrency`` sender threads per channel when given, instead of the engine's)."""
        if channels is not None:
            unknown = sorted(set(channels) - set(self.program.channels) - set(self.channels))
            if unknown:
                known = ", ".join(sorted(set(self.program.channels) | set(self.channels)))
                raise ConfigError(
                    f"dispatch: unknown channel {unknown[0]!r} (the program has: {known})",
                    file=self.program.origin,
                )
        return self.dispatcher.dispatch(limit, channels=channels, concurrency=concurrency)

    def run_once(self) -> RunReport:
        """Sync every source, then :meth:`step`."""
        synced = tuple(self.sync())
        return attrs.evolve(self.step(), synced=synced)

    def step(self) -> RunReport:
        """One round on what is stored: tiers, segments, journeys, then queue and send.

        :meth:`run_once` is a sync followed by this; the simulator calls it alone, feeding
        the events itself as its clock passes them.
        """
        self.update_health()
        self.update_tiers()
        self.update_segments()
        self.update_journeys()
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

    # -- the suppression list ---------------------------------------------------------------

    def suppress(
        self,
        address: str,
        reason: Reason | str = Reason.MANUAL,
        *,
        source: str = "api",
        note: str = "",
    ) -> Suppression:
        """Never contact ``address`` (an email or an E.164 phone number) again, on any channel,
        until :meth:`unsuppress`. ``reason``: ``hard_bounce``, ``complaint``, ``manual`` or
        ``legal``; ``source`` says who said so (``api``, ``webhook:postmark``, ...). Rows
        queued for it are skipped when they come up. Raises InputError for a bad address or
        reason."""
        entry = Suppression(
            address=address, reason=reason, source=source, at=self.clock.now(), note=note
        )
        add_suppressions(self.store, [entry])
        return entry

    def unsuppress(self, address: str) -> bool:
        """Take ``address`` off the suppression list; False if it was not on it."""
        return remove_suppressions(self.store, [normalise_address(address)]) > 0

    def suppressions(self) -> list[Suppression]:
        """The suppression list, by normalised address."""
        return all_suppressions(self.store)

    def import_suppressions(self, text: str, *, source: str = "import") -> int:
        """Add the entries of CSV ``text`` (columns ``address,reason[,source,at,note]``), all
        or none: a file with a bad line raises InputError naming every bad line and adds
        nothing. Returns how many entries it holds."""
        entries = read_csv(text, now=self.clock.now(), source=source)
        add_suppressions(self.store, entries)
        return len(entries)

    def export_suppressions(self) -> str:
        """The suppression list as CSV text, which :meth:`import_suppressions` reads back."""
        return write_csv(self.suppressions())

    # -- subscriptions and consent -----------------------------------------------------------

    def unsubscribe(
        self,
        contact: Contact | str,
        topic: str | None = None,
        channel: ChannelKind | str | None = None,
        *,
        source: str,
    ) -> Preferences:
        """Stop sending ``contact`` the touches of ``topic`` (None: every topic that is not
        transactional) on ``channel`` (a channel kind; None: every channel). ``source`` says
        where the request came from (``link``, ``webhook``, ``api``, ``import``); the change is
        kept with it and its time, and recorded as an ``unsubscribed`` event, so consent can
        be proven. Rows already queued are skipped when they come up. Returns the contact's
        preferences after the change; raises InputError for an unknown contact, topic or
        channel, changing nothing."""
        return self._answer(contact, topic, channel, source=source, subscribed=False)

    def resubscribe(
        self,
        contact: Contact | str,
        topic: str | None = None,
        channel: ChannelKind | str | None = None,
        *,
        source: str,
    ) -> Preferences:
        """Undo :meth:`unsubscribe` for ``topic`` and ``channel`` (recorded as a
        ``resubscribed`` event); the latest answer covering a send decides it."""
        return self._answer(contact, topic, channel, source=source, subscribed=True)

    def preferences(self, contact: Contact | str) -> Preferences:
        """``contact``'s subscriptions: each topic, and every answer with its source and time."""
        contact_id = self._known_contact(contact)
        return Preferences(
            contact_id=contact_id,
            topics=self.program.topics,
            answers=answers_of(self.store, [contact_id]),
        )

    def unsubscribe_token(self, contact: Contact | str, topic: str | None = None) -> str:
        """A signed token for ``contact`` and ``topic`` (None: every topic), as the links of
        its emails carry; raises ConfigError when ``[unsubscribe]`` has no key."""
        contact_id = contact.id if isinstance(contact, Contact) else contact
        return make_token(self.program.unsubscribe, contact_id, topic, now=self.clock.now())

    def verify_unsubscribe_token(self, token: str) -> TokenClaims:
        """What ``token`` says; raises :class:`~onetomany.rules.unsubscribe.TokenError` for a
        malformed, truncated, tampered, foreign, retired or expired one, changing nothing."""
        return verify_token(self.program.unsubscribe, token, now=self.clock.now())

    def unsubscribe_with_token(self, token: str, *, source: str = "link") -> Preferences:
        """The one-click unsubscribe (RFC 8058): verify ``token``, then unsubscribe its
        contact from its topic. A refused token raises TokenError and changes nothing."""
        claims = self.verify_unsubscribe_token(token)
        topic = claims.topic if claims.topic in self.program.topics else None
        return self.unsubscribe(claims.contact_id, topic, source=source)

    def _known_contact(self, contact: Contact | str) -> str:
        contact_id = contact.id if isinstance(contact, Contact) else contact
        if not isinstance(contact_id, str) or self.store.get_contact(contact_id) is None:
            raise InputError(f"contact {contact_id!r} is not in the store")
        return contact_id

    def _answer(
        self,
        contact: Contact | str,
        topic: str | None,
        channel: ChannelKind | str | None,
        *,
        source: str,
        subscribed: bool,
    ) -> Preferences:
        contact_id = self._known_contact(contact)
        if topic is not None and topic not in self.program.topics:
            raise InputError(unknown_topic(topic, list(self.program.topics)))
        if channel is not None:
            try:
                channel = ChannelKind(channel)
            except ValueError:
                known = ", ".join(k.value for k in ChannelKind)
                raise InputError(f"unknown channel kind {channel!r} (kinds: {known})") from None
        if not isinstance(source, str) or not source.strip():
            raise InputError("a subscription change needs its source (link, webhook, api, ...)")
        now = self.clock.now()
        answer = Answer(
            contact_id=contact_id,
            topic=topic,
            channel=str(channel) if channel is not None else None,
            subscribed=subscribed,
            source=source.strip(),
            at=now,
        )
        stored = self.store.get_contact(contact_id)
        name = "resubscribed" if subscribed else "unsubscribed"
        digest = hashlib.sha256(
            f"{name}#{contact_id}#{topic}#{answer.channel}#{now.isoformat()}".encode()
        ).hexdigest()[:32]
        event = Event(
            id=digest,
            name=name,
            occurred_at=now,
            contact_id=contact_id,
            account_id=stored.account_id if stored else None,
            properties={"topic": topic, "channel": answer.channel, "source": answer.source},
        )
        record_answer(self.store, answer, event)
        return self.preferences(contact_id)

    # -- measuring --------------------------------------------------------------------------

    def metrics(
        self,
        *,
        by: Iterable[str] = ALL_DIMENSIONS,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Metrics:
        """The funnels of the messages queued in ``[since, until)``: in all, and by touch,
        channel, locale, segment, tier and week (docs/measuring.md)."""
        return measure(
            self.program,
            self.store,
            now=self.clock.now(),
            by=by,
            since=since,
            until=until,
            segments=self.segments,
        )

    def conversions(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> tuple[Conversion, ...]:
        """Each touch with a goal (``goal = { event, within_days }``), measured over its
        messages sent in ``[since, until)``: conversions by every-touch and last-touch
        attribution, and the mean time to convert."""
        return conversions(self.program, self.store, since=since, until=until)

    def nps(
        self,
        *,
        by: Iterable[str] = ("segment", "tier", "plan", "month"),
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> NpsResults:
        """NPS of the answers in ``[since, until)``: the score, response rate and
        distribution in all and by segment, tier, plan, week or month (docs/measuring.md)."""
        return nps_results(
            self.store,
            now=self.clock.now(),
            segments=self.segments,
            by=by,
            since=since,
            until=until,
        )

    def report(
        self, out: str | Path, *, since: datetime | None = None, until: datetime | None = None
    ) -> Path:
        """Write the HTML report of the messages in ``[since, until)`` to ``out`` (one
        self-contained file, docs/measuring.md); returns its path."""
        return write_report(
            self.program,
            self.store,
            Path(out),
            channels=self.channels,
            now=self.clock.now(),
            since=since,
            until=until,
        )

    def timeline(self, subject: str, *, tz: tzinfo | None = None) -> Timeline:
        """Everything that happened to the contact or account ``subject``, in order, its
        times in ``tz`` (by default this machine's): events, stage and tier changes,
        decisions, messages and their deliveries, opens, clicks and answers."""
        return build_timeline(self.store, subject, tz=tz or machine_zone())

    # -- in-app inbox -----------------------------------------------------------------------
    # The web app (onetomany.web) calls these for the contact its token names; every one
    # touches that contact's items only. See onetomany.store.queries.inbox.

    def inbox(self, contact_id: str, *, unread_only: bool = False) -> list[InboxItem]:
        """A contact's visible in-app messages (not archived, not snoozed), newest first."""
        return inbox_q.inbox_items(
            self.store, contact_id, now=self.clock.now(), unread_only=unread_only
        )

    def inbox_page(
        self,
        contact_id: str,
        *,
        tab: str = "inbox",
        topic: str | None = None,
        limit: int = 20,
        after: inbox_q.Position | None = None,
    ) -> inbox_q.InboxPage:
        """One page of a tab (``inbox``, ``unread``, ``archived``), newest first."""
        return inbox_q.inbox_page(
            self.store,
            contact_id,
            now=self.clock.now(),
            tab=tab,
            topic=topic,
            limit=limit,
            after=after,
        )

    def inbox_item(self, contact_id: str, item_id: int) -> InboxItem | None:
        """The contact's item ``item_id``; ``None`` for no such item, or another contact's."""
        return inbox_q.inbox_item(self.store, contact_id, item_id)

    def unread_count(self, contact_id: str) -> int:
        return self.inbox_counts(contact_id).unread

    def inbox_counts(self, contact_id: str) -> inbox_q.InboxCounts:
        """The unread and unseen counts the bell shows."""
        return inbox_q.inbox_counts(self.store, contact_id, now=self.clock.now())

    def mark_read(self, contact_id: str, item_ids: Iterable[int] | None = None) -> int:
        """Mark items (or all, with ``None``) read; returns how many changed.

        Each read is a ``message_opened`` event naming the message's outbox key, so a
        ``not_opened`` ladder waiting on it stops, as for an email open. The events are stored
        first, with ids derived from the key, so a crash in between counts the open once."""
        now = self.clock.now()
        self._inapp_engaged(
            inbox_q.unread_keys(self.store, contact_id, item_ids, now=now), "opened"
        )
        return inbox_q.mark_read(self.store, contact_id, item_ids, now=now)

    def mark_seen(self, contact_id: str) -> int:
        """Mark every visible item seen (the bell's list showed them); returns how many."""
        return inbox_q.mark_seen(self.store, contact_id, now=self.clock.now())

    def archive(self, contact_id: str, item_ids: Iterable[int], *, archived: bool = True) -> int:
        """Archive items (``archived=False`` brings them back); returns how many changed."""
        return inbox_q.archive(
            self.store, contact_id, item_ids, now=self.clock.now(), archived=archived
        )

    def snooze(self, contact_id: str, item_id: int, until: datetime) -> datetime | None:
        """Hide an item until ``until``, when it comes back unread; returns that time in UTC,
        or ``None`` when the contact has no such item. A naive ``until`` is a wall-clock time
        in the contact's timezone (``9:00`` is nine in the morning where the contact is)."""
        if until.tzinfo is None:
            contact = self.store.get_contact(contact_id)
            # fold=0: a time skipped or repeated by a daylight-saving change is its first reading.
            until = until.replace(tzinfo=ZoneInfo(contact.timezone if contact else "UTC"))
        until = until.astimezone(UTC)
        changed = inbox_q.snooze(self.store, contact_id, item_id, until=until, now=self.clock.now())
        return until if changed else None

    def click(self, contact_id: str, item_id: int) -> InboxItem | None:
        """Record a click-through on an item (a ``message_clicked`` event, and a read), and
        return the item (its ``url`` is where to go); ``None`` when the contact has none such."""
        item = self.inbox_item(contact_id, item_id)
        if item is None:
            return None
        self._inapp_engaged([item.idempotency_key], "clicked")
        self.mark_read(contact_id, [item_id])
        return item

    def _inapp_engaged(self, keys: Iterable[str], kind: str) -> None:
        now = self.clock.now()
        for key in keys:
            # An item kept without an outbox row (written straight into the store) has no
            # message to credit.
            if outbox_row(self.store, key) is None:
                continue
            digest = hashlib.sha256(key.encode()).hexdigest()[:40]
            engagement_event(self.store, key, kind, at=now, now=now, id=f"inapp-{kind}-{digest}")


def pick(audience: Audience, contacts: list[Contact]) -> list[Contact]:
    """Apply an audience's role fallback to one account's ``contacts`` (in a stable order)."""
    return audience.pick(contacts)


def _id(contact: Contact) -> str:
    return contact.id
