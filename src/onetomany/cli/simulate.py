"""The simulator: the engine run with another clock, over a date range.

There is no second implementation of the rules here. A :class:`Simulator` builds an ordinary
:class:`~onetomany.engine.Engine` on a :class:`~onetomany.model.clock.FrozenClock` and a scratch
store (never the program's own), reads the program's sources once for their accounts and
contacts, and holds their events back: it moves the clock forward one step at a time, tracks
the events the clock has passed, in time order, and calls :meth:`Engine.step` (re-tier, queue,
dispatch), exactly as a live engine does on each round. What the outbox holds at the end is
what the program would have done.

With ``dry_run`` every channel is replaced by a :class:`DryRunChannel` of the same kind, which
keeps each rendered message and delivers nothing; rendering still runs, so a template that
fails dead-letters its rows as it would live.
"""

from __future__ import annotations

import contextlib
import csv
import json
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from onetomany.delivery.channels import Channel
from onetomany.delivery.compose import recipient
from onetomany.delivery.dispatcher import DispatchReport
from onetomany.engine import Engine, store_url_for
from onetomany.errors import ConfigError, DeliveryError
from onetomany.model import ChannelKind, DeliveryResult, Event, Message, OutboxStatus
from onetomany.model.clock import FrozenClock
from onetomany.plugins.builtin.outbox_folder import OutboxFolderChannel
from onetomany.plugins.manager import Plugins
from onetomany.plugins.settings import PluginSettings
from onetomany.plugins.sources import read_all
from onetomany.program import Program, Touch
from onetomany.store import Store
from onetomany.store.store import normalize_url

#: Called after each step with the steps done and the steps in all.
Progress = Callable[[int, int], None]

#: The columns of ``--out`` files, in order.
COLUMNS = (
    "time",
    "touch",
    "channel",
    "kind",
    "contact",
    "account",
    "recipient",
    "segment",
    "idempotency_key",
    "status",
)


def parse_when(text: str, *, option: str = "date") -> datetime:
    """A date (``2026-11-02``: UTC midnight) or an ISO datetime (without offset: UTC).

    :param option: what the text was given as (``--from``), for the error.
    """
    value = text.strip()
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{text!r} is not a date (YYYY-MM-DD) or an ISO datetime (2026-11-02T09:00+00:00)",
            key=option,
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


class DryRunChannel(Channel):
    """Stands in for a program channel in a dry run: keeps each message, delivers nothing."""

    kinds = tuple(ChannelKind)

    def __init__(self, settings: PluginSettings, *, kind: ChannelKind) -> None:
        # The program's options are the real plugin's; this stand-in takes only the kind.
        options: dict[str, Any] = {"kind": kind.value}
        super().__init__(PluginSettings(name=settings.name, plugin="dry-run", options=options))
        self.messages: list[Message] = []

    def send(self, message: Message) -> DeliveryResult:
        self.messages.append(message)
        return DeliveryResult(provider_message_id=f"dry-run:{len(self.messages)}")


@attrs.frozen(kw_only=True)
class PlannedTouch:
    """One outbox row the simulation produced: who gets what, when, and what became of it.

    ``time`` is when its last delivery attempt happened, or when it was due if none did;
    ``recipient`` is the address its channel kind reaches (the account owner for a CSM task),
    empty when there is none; ``status`` is the row's (``sent``, ``dead``, ``pending``).
    """

    time: datetime
    touch: str
    channel: str
    kind: str
    contact: str | None
    account: str | None
    recipient: str
    segment: str
    idempotency_key: str
    status: str

    def as_dict(self) -> dict[str, str]:
        """The row as ``--out`` writes it: every column a string."""
        return {
            name: value.isoformat() if isinstance(value, datetime) else (value or "")
            for name, value in attrs.asdict(self).items()
        }


@attrs.frozen(kw_only=True)
class DayCount:
    """How many of one touch were sent (and dead-lettered) on one day (UTC)."""

    day: date
    touch: str
    segment: str
    sent: int
    dead: int


#: Which policy stopping a row counts under which column of :class:`TouchOutcomes`.
_SKIP_COLUMNS = {
    "caps": "capped",
    "suppression": "suppressed",
    "consent": "unsubscribed",
    "topics": "unsubscribed",
    "unsubscribe": "unsubscribed",
}


@attrs.frozen(kw_only=True)
class TouchOutcomes:
    """What became of one touch's rows in a simulation, as the dispatcher reported it.

    ``sent`` rows went out; ``deferred`` counts deferrals (a row the quiet hours deferred and
    then a cap deferred again counts twice), ``capped`` the rows a frequency cap deferred or
    dropped, ``suppressed`` and ``unsubscribed`` the rows those policies skipped, and
    ``skipped`` those any other policy skipped (the WhatsApp window, say).
    """

    touch: str
    sent: int = 0
    deferred: int = 0
    capped: int = 0
    suppressed: int = 0
    unsubscribed: int = 0
    skipped: int = 0


@attrs.frozen(kw_only=True)
class CsmWeek:
    """How many CSM tasks one CSM (an account owner's address) got in one ISO week."""

    csm: str
    week: str
    tasks: int


@attrs.frozen(kw_only=True)
class SimulationReport:
    """What a simulation did: every planned touch, plus the summaries the CLI prints."""

    program: str
    start: datetime
    end: datetime
    step: timedelta
    dry_run: bool
    steps: int
    history_events: int
    replayed_events: int
    touches: tuple[PlannedTouch, ...]
    #: The rendered messages of a dry run (empty when the channels delivered).
    messages: tuple[Message, ...] = ()
    #: Where channels that write into a folder (the ``outbox`` plugin) put their messages:
    #: each folder with the names of the channels that wrote there.
    folders: tuple[tuple[Path, tuple[str, ...]], ...] = ()
    #: The send policies' verdicts per touch, policy and outcome (``skipped``, ``deferred``),
    #: summed over every dispatch of the run.
    policy_counts: Mapping[tuple[str, str, str], int] = attrs.field(factory=dict)

    def outcomes(self) -> list[TouchOutcomes]:
        """Per touch: sent, deferred, capped, suppressed, unsubscribed, skipped otherwise."""
        sent = Counter(t.touch for t in self.touches if t.status == OutboxStatus.SENT)
        columns: dict[str, Counter[str]] = {}
        for (touch, policy, outcome), rows in self.policy_counts.items():
            counts = columns.setdefault(touch, Counter())
            if outcome == "deferred":
                counts["deferred"] += rows
            if policy == "caps" or outcome == "skipped":
                counts[_SKIP_COLUMNS.get(policy, "skipped")] += rows
        return [
            TouchOutcomes(touch=touch, sent=sent[touch], **columns.get(touch, Counter()))
            for touch in sorted(sent.keys() | columns.keys())
        ]

    def count(self, status: str) -> int:
        return sum(1 for t in self.touches if t.status == status)

    def days(self) -> list[DayCount]:
        """Sent and dead touches per day and touch, in day then touch order."""
        sent: Counter[tuple[date, str, str]] = Counter()
        dead: Counter[tuple[date, str, str]] = Counter()
        for touch in self.touches:
            key = (touch.time.date(), touch.touch, touch.segment)
            if touch.status == OutboxStatus.SENT:
                sent[key] += 1
            elif touch.status == OutboxStatus.DEAD:
                dead[key] += 1
        counts = []
        for key in sorted(sent.keys() | dead.keys()):
            day, name, segment = key
            counts.append(
                DayCount(day=day, touch=name, segment=segment, sent=sent[key], dead=dead[key])
            )
        return counts

    def csm_weeks(self) -> list[CsmWeek]:
        """Sent CSM tasks per CSM (the account owner they went to) and ISO week."""
        tasks: Counter[tuple[str, str]] = Counter()
        for touch in self.touches:
            if touch.kind == ChannelKind.CSM and touch.status == OutboxStatus.SENT:
                year, week, _ = touch.time.isocalendar()
                tasks[(touch.recipient, f"{year}-W{week:02d}")] += 1
        return [
            CsmWeek(csm=csm, week=week, tasks=tasks[(csm, week)]) for csm, week in sorted(tasks)
        ]


def check_output(path: Path) -> str:
    """The format ``path`` asks for by its extension (``csv`` or ``json``), or a ConfigError."""
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in ("csv", "json"):
        raise ConfigError(
            f"cannot write {suffix or 'a file without extension'!r}: name a .csv or .json file",
            file=str(path),
        )
    return suffix


def write_touches(touches: Sequence[PlannedTouch], path: str | Path) -> None:
    """Write every planned touch to ``path``: CSV or JSON, by its extension."""
    path = Path(path)
    fmt = check_output(path)
    rows = [t.as_dict() for t in touches]
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        path.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


class Simulator:
    """Runs ``program`` from ``start`` to ``end`` on a virtual clock; see the module doc.

    :param start, end: the range, aware datetimes; the clock visits ``start``, every
        ``step`` after it, and ``end``.
    :param dry_run: replace every channel by a :class:`DryRunChannel` (deliver nothing).
    :param step: how far the clock moves between rounds; an hour keeps local-time cadences
        and absences on time.
    :param store_url: the scratch store to use (kept afterwards, for inspection); by default
        a temporary SQLite file, removed when the run ends. Never the program's own store.
    :param plugins: the plugin manager; by default built-ins plus installed entry points.
    """

    def __init__(
        self,
        program: Program,
        start: datetime,
        end: datetime,
        *,
        dry_run: bool = False,
        step: timedelta = timedelta(hours=1),
        store_url: str | None = None,
        plugins: Plugins | None = None,
    ) -> None:
        for name, when in (("start", start), ("end", end)):
            if when.tzinfo is None or when.utcoffset() is None:
                raise ConfigError(f"the simulation's {name} {when.isoformat()} has no timezone")
        if end <= start:
            raise ConfigError(
                f"the simulation ends ({end.isoformat()}) before it starts ({start.isoformat()})",
                key="to",
            )
        if step <= timedelta(0):
            raise ConfigError(f"the step must be positive, not {step}", key="step")
        if store_url is not None and _same_store(store_url, store_url_for(program)):
            raise ConfigError(
                f"{store_url} is the program's own store; simulate into a scratch store",
                key="store",
            )
        self.program = program
        self.start = start.astimezone(UTC)
        self.end = end.astimezone(UTC)
        self.dry_run = dry_run
        self.step = step
        self.store_url = store_url
        self.plugins = plugins or Plugins()

    def times(self) -> list[datetime]:
        """Where the clock stops: ``start``, every ``step`` after it, and ``end``."""
        times = []
        when = self.start
        while when < self.end:
            times.append(when)
            when += self.step
        return [*times, self.end]

    def run(self, *, progress: Progress | None = None) -> SimulationReport:
        """Run the whole range and report what the program did in it."""
        clock = FrozenClock(self.start)
        times = self.times()
        with self._scratch_store() as store:
            channels = self._dry_run_channels(clock) if self.dry_run else {}
            with Engine(
                self.program, store=store, clock=clock, plugins=self.plugins, channels=channels
            ) as engine:
                events = self._read_sources(engine)
                history = [e for e in events if e.occurred_at < self.start]
                pending = [e for e in events if self.start <= e.occurred_at <= self.end]
                store.add_events(history, now=clock.now())
                engine.skip_stored_events()
                replayed = 0
                verdicts = DispatchReport()
                for done, when in enumerate(times, start=1):
                    clock.set(when)
                    while replayed < len(pending) and pending[replayed].occurred_at <= when:
                        engine.track(pending[replayed])
                        replayed += 1
                    verdicts += engine.step().dispatched
                    if progress is not None:
                        progress(done, len(times))
                touches = planned_touches(engine)
                folders = outbox_folders(engine)
        return SimulationReport(
            program=self.program.name,
            start=self.start,
            end=self.end,
            step=self.step,
            dry_run=self.dry_run,
            steps=len(times),
            history_events=len(history),
            replayed_events=replayed,
            touches=tuple(touches),
            messages=tuple(m for c in channels.values() for m in c.messages),
            folders=folders,
            policy_counts=dict(verdicts.by_touch),
        )

    @contextlib.contextmanager
    def _scratch_store(self) -> Iterator[Store]:
        if self.store_url is not None:
            yield Store(self.store_url)  # the engine closes it
            return
        with tempfile.TemporaryDirectory(prefix="onetomany-simulate-") as folder:
            yield Store(Path(folder) / "simulation.db")

    def _dry_run_channels(self, clock: FrozenClock) -> dict[str, DryRunChannel]:
        return {
            name: DryRunChannel(settings, kind=self._kind_of(name, settings, clock))
            for name, settings in self.program.channels.items()
        }

    def _kind_of(self, name: str, settings: PluginSettings, clock: FrozenClock) -> ChannelKind:
        """The kind the program's channel ``name`` serves, read as the channel reads it (a dry
        run needs no credentials, so the channel itself is not built)."""
        plugin = self.plugins.channels().get(settings.plugin, wanted_by=f"channels.{name}.plugin")
        return plugin.value.kind_for(settings)

    def _read_sources(self, engine: Engine) -> list[Event]:
        """Store every source's profiles; return their events, oldest first."""
        events: list[Event] = []
        for name in self.program.sources:
            result = read_all(engine.source(name))
            engine.identify(*result.accounts, *result.contacts)
            events += result.events
        return sorted(events, key=lambda e: (e.occurred_at, e.id))


def _same_store(a: str, b: str) -> bool:
    def key(url: str) -> str:
        return url if "://" in url else normalize_url(Path(url).expanduser().resolve())

    return key(a) == key(b)


def outbox_folders(engine: Engine) -> tuple[tuple[Path, tuple[str, ...]], ...]:
    """Each folder ``engine``'s outbox-folder channels write into, with their names."""
    names: dict[Path, list[str]] = {}
    for name, channel in engine.channels.items():
        if isinstance(channel, OutboxFolderChannel):
            names.setdefault(channel.folder, []).append(name)
    return tuple((folder, tuple(channels)) for folder, channels in names.items())


def planned_touches(engine: Engine) -> list[PlannedTouch]:
    """Every outbox row of ``engine``'s store as a :class:`PlannedTouch`, in time order."""
    store = engine.store
    rows = store.outbox_rows()
    last_attempt = {d.outbox_id: d.at for d in store.deliveries()}
    contacts = store.get_contacts(r.contact_id for r in rows if r.contact_id)
    accounts = store.get_accounts(
        {r.account_id for r in rows if r.account_id}
        | {c.account_id for c in contacts.values() if c.account_id}
    )
    touches = {t.name: t for t in engine.program.touches}
    planned = []
    for row in rows:
        channel = engine.channels.get(row.channel)
        kind = channel.serves if channel is not None else None
        contact = contacts.get(row.contact_id) if row.contact_id else None
        address = ""
        if contact is not None and kind is not None:
            account_id = contact.account_id or row.account_id
            with contextlib.suppress(DeliveryError):
                address = recipient(contact, kind, accounts.get(account_id or ""))
        planned.append(
            PlannedTouch(
                time=last_attempt.get(row.id, row.available_at),
                touch=row.touch,
                channel=row.channel,
                kind=str(kind or ""),
                contact=row.contact_id,
                account=row.account_id,
                recipient=address,
                segment=segment_of(touches.get(row.touch)),
                idempotency_key=row.idempotency_key,
                status=_status(row.status),
            )
        )
    return sorted(planned, key=lambda t: (t.time, t.touch, t.idempotency_key))


def segment_of(touch: Touch | None) -> str:
    """Whom a touch is for, in a word: its segment, else its trigger, else ``manual``."""
    if touch is None:
        return ""
    if touch.segment is not None:
        return touch.segment
    return touch.trigger.describe() if touch.trigger is not None else "manual"


def _status(status: str) -> str:
    # A claimed row at the end of a run is one whose send is still in flight: not yet sent.
    return OutboxStatus.PENDING.value if status == OutboxStatus.CLAIMED else status


__all__ = [
    "COLUMNS",
    "CsmWeek",
    "DayCount",
    "DryRunChannel",
    "PlannedTouch",
    "SimulationReport",
    "Simulator",
    "TouchOutcomes",
    "parse_when",
    "planned_touches",
    "write_touches",
]
