"""A program: the touches one product runs, the channels and sources they use, and where.

A program is built in Python (construct :class:`Program`) or loaded from a folder holding a
``program.toml`` and its templates (:func:`load_program`). Both give the same objects. Loading
reports every problem at once, each with the file, the key and the reason.

A minimal ``program.toml``::

    [program]
    name = "acme"
    sender = "Acme Success <success@acme.test>"

    [channels.email]
    plugin = "outbox"
    folder = "var/outbox"

    [touches.welcome]
    trigger = { event = "signed_up" }
    channel = "email"
    template = "welcome"
    audience = { roles = ["admin", "sponsor"] }

An optional ``[delivery]`` table tunes retries of transient failures: ``max_attempts``
(default 5, at most 100), ``initial`` seconds before the first retry (30, doubling each time;
positive), ``maximum`` seconds between attempts (3600; at least ``initial``) and ``jitter``
seconds (5); ``concurrency`` is how many sender threads ``dispatch`` runs per channel, each
over its own connection (0, the default: the dispatching thread sends).

Channel and source options (and ``[unsubscribe]`` keys) may name environment variables as
``${NAME}`` (``password = "${SMTP_PASSWORD}"``), so secrets stay out of the file; an unset one
is an error, unless written ``${NAME:-fallback}``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import attrs

from onetomany.delivery.retry import RetryPolicy
from onetomany.delivery.routes import ROUTE_KEYS, Route, read_routes
from onetomany.errors import ConfigError, ConfigErrors
from onetomany.model import Contact, Event
from onetomany.plugins.settings import PluginSettings
from onetomany.rules.calendar import Reservation, read_reserved
from onetomany.rules.caps import Cap, cadence_conflicts, read_caps
from onetomany.rules.freshness import parse_staleness
from onetomany.rules.goals import Goal, read_goal
from onetomany.rules.health import HealthSettings, read_health
from onetomany.rules.holdouts import Holdout, read_holdout
from onetomany.rules.journeys import Journey, read_journeys
from onetomany.rules.retention import Retention, read_retention
from onetomany.rules.segments import TRAIT_TYPES, SegmentSet, check_types, parse
from onetomany.rules.tiers_toml import TierSettings, read_tiers
from onetomany.rules.topics import Topic, read_topics, unknown_topic
from onetomany.rules.tracking_links import TrackingSettings, read_tracking
from onetomany.rules.triggers import (
    EVENT_DRIVEN,
    AbsenceTrigger,
    CadenceTrigger,
    EngagementTrigger,
    EventTrigger,
    Names,
    SegmentTrigger,
    StageTrigger,
    Trigger,
    read_trigger,
)
from onetomany.rules.unsubscribe import UnsubscribeSettings, read_unsubscribe
from onetomany.rules.windows import WindowSettings, read_windows

__all__ = [
    "AbsenceTrigger",
    "Audience",
    "CadenceTrigger",
    "EngagementTrigger",
    "EventTrigger",
    "Program",
    "Reentry",
    "SegmentTrigger",
    "StageTrigger",
    "Touch",
    "Trigger",
    "load_program",
]

PROGRAM_FILE = "program.toml"
T = TypeVar("T")
#: How an in-app body may be written (a touch's ``body``): escaped text, or sanitised markdown
#: or HTML (onetomany.web.bodies renders them).
BODY_FORMATS = ("text", "markdown", "html")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


REENTRY_KINDS = ("occurrence", "once", "stage", "period")


@attrs.frozen(kw_only=True)
class Reentry:
    """How often one touch may reach one recipient.

    * ``occurrence`` (the default): once per trigger occurrence (each event, each absence,
      each cadence date);
    * ``once``: once ever;
    * ``stage``: once per entry into the account's current stage of ``journey``;
    * ``period``: at most once in any ``days`` days.
    """

    kind: str = attrs.field(default="occurrence", validator=attrs.validators.in_(REENTRY_KINDS))
    journey: str | None = None
    days: int | None = None

    def __attrs_post_init__(self) -> None:
        if (self.kind == "stage") != (self.journey is not None):
            raise ValueError("a 'stage' re-entry rule names its journey, and only it does")
        if (self.kind == "period") != (self.days is not None and self.days >= 1):
            raise ValueError("a 'period' re-entry rule has days >= 1, and only it does")

    def describe(self) -> str:
        return {
            "occurrence": "once per occurrence",
            "once": "once ever",
            "stage": f"once per entry into a {self.journey} stage",
            "period": f"at most once every {self.days} days",
        }[self.kind]


@attrs.frozen(kw_only=True)
class Audience:
    """Who inside an account receives a touch.

    ``roles`` is a fallback order: the first role with at least one contact wins (sponsor,
    then leader). With no roles, an event that names a contact goes to that contact. ``every``
    sends to every contact of the winning role (or of the account) instead of the first one.
    """

    roles: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    every: bool = False

    def describe(self) -> str:
        who = " then ".join(self.roles) if self.roles else "the event's contact"
        return f"{'every' if self.every else 'one'}: {who}"

    def pick(self, contacts: list[Contact]) -> list[Contact]:
        """The role fallback applied to one account's ``contacts`` (in a stable order)."""
        if self.roles:
            for role in self.roles:
                matching = [c for c in contacts if c.role == role]
                if matching:
                    return matching if self.every else matching[:1]
            return []
        return contacts if self.every else contacts[:1]


@attrs.frozen(kw_only=True)
class Touch:
    """What to send when a trigger fires: through which channel, with which template, to whom.

    A touch without a trigger is sent only by a manual broadcast. ``segment`` names a segment
    the recipient must be in when the touch is queued. ``subject`` and ``preheader`` (Jinja
    templates) are for an email template that does not set them in its front matter, such as
    MJML a team already has; a front matter value wins, and the MJML's ``<mj-title>`` and
    ``<mj-preview>`` are the last resort.
    """

    name: str
    trigger: Trigger | None
    channel: str
    template: str
    audience: Audience = attrs.field(factory=Audience)
    segment: str | None = None
    #: The ``[topics]`` topic it belongs to: a contact unsubscribed from it is not sent it.
    topic: str | None = None
    reentry: Reentry = attrs.field(factory=Reentry)
    subject: str | None = None
    preheader: str | None = None
    #: Which touch goes first when several compete for a frequency cap's last slots.
    priority: int = 0
    #: Send again a message whose outcome is unknown (sent, no answer) even when the provider
    #: does not drop repeated keys: a possible copy is better than none (a password reset).
    resend_unknown: bool = False
    #: What the touch aims at (conversion goals, docs/measuring.md).
    goal: Goal | None = None
    #: A control group kept out of it (``holdout = 0.1``, docs/measuring.md).
    holdout: Holdout | None = None
    #: The sources whose data it acts on: while one is stale it holds (the freshness guard).
    needs: tuple[str, ...] = attrs.field(default=(), converter=tuple[str, ...])
    #: Rewrite its email's links and add an open pixel when ``[tracking]`` is set.
    track: bool = True
    #: How the web inbox shows its in-app body: ``"text"`` (escaped), ``"markdown"`` or
    #: ``"html"`` (both sanitised): onetomany.web.bodies.
    body: str = attrs.field(default="text", validator=attrs.validators.in_(BODY_FORMATS))

    @property
    def template_fields(self) -> dict[str, str]:
        """The ``subject`` and ``preheader`` this touch gives its template, those it sets."""
        fields = {"subject": self.subject, "preheader": self.preheader}
        return {key: value for key, value in fields.items() if value is not None}


@attrs.frozen(kw_only=True)
class Program:
    """Everything one product's one-to-many program consists of."""

    name: str
    touches: tuple[Touch, ...] = attrs.field(default=(), converter=tuple[Touch, ...])
    channels: Mapping[str, PluginSettings] = attrs.field(factory=dict)
    #: Failover groups and rate limits, by channel name (a group is not in ``channels``).
    routes: Mapping[str, Route] = attrs.field(factory=dict)
    sources: Mapping[str, PluginSettings] = attrs.field(factory=dict)
    #: How stale each source's data may get (``max_staleness``), by source name.
    freshness: Mapping[str, timedelta] = attrs.field(factory=dict)
    #: The keys each source's contacts are matched by across sources (``identity``), by name.
    identity: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    templates_dir: Path = attrs.field(factory=lambda: Path("templates"), converter=Path)
    store_url: str = "onetomany.db"
    sender: str | None = None
    unsubscribe_url: str = ""
    constants: Mapping[str, Any] = attrs.field(factory=dict)
    segments: Mapping[str, str] = attrs.field(factory=dict)
    journeys: Mapping[str, Journey] = attrs.field(factory=dict)
    topics: Mapping[str, Topic] = attrs.field(factory=dict)
    #: ``[unsubscribe]``: signed-token links and the List-Unsubscribe headers.
    unsubscribe: UnsubscribeSettings = attrs.field(factory=UnsubscribeSettings)
    #: ``[tracking]``: signed click and open links (web app routes ``/c`` and ``/o``).
    tracking: TrackingSettings = attrs.field(factory=TrackingSettings)
    traits: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict)
    tiers: TierSettings = attrs.field(factory=TierSettings)
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    #: ``[delivery] concurrency``: sender threads per channel in ``dispatch`` (0: none).
    concurrency: int = 0
    windows: WindowSettings = attrs.field(factory=WindowSettings)
    caps: Mapping[str, Cap] = attrs.field(factory=dict)
    reserved: tuple[Reservation, ...] = attrs.field(default=(), converter=tuple[Reservation, ...])
    #: The goal of every touch that names none of its own.
    goal: Goal | None = None
    #: The control group kept out of every touch that declares none of its own.
    holdout: Holdout | None = None
    #: ``[health]``: the measures of each account's health score.
    health: HealthSettings = attrs.field(factory=HealthSettings)
    #: ``[retention]``: how long events, deliveries and decisions are kept.
    retention: Retention = attrs.field(factory=Retention)
    base_dir: Path = attrs.field(factory=Path.cwd, converter=Path)
    origin: str = "<python>"

    def touch_fields(self) -> dict[str, dict[str, str]]:
        """Each touch's :attr:`Touch.template_fields`, for the touches that set any: what a
        :class:`~onetomany.templating.TemplateSet` renders them with."""
        return {t.name: t.template_fields for t in self.touches if t.template_fields}

    def goal_of(self, touch: Touch) -> Goal | None:
        """The touch's goal, or the program's when it names none."""
        return touch.goal or self.goal

    def holdout_of(self, touch: Touch) -> Holdout | None:
        """The touch's holdout, or the program's when it declares none, its salt set."""
        if touch.holdout is not None:
            return touch.holdout.salted(self.name, touch.name)
        return self.holdout.salted(self.name, None) if self.holdout is not None else None

    def touch(self, name: str) -> Touch:
        for touch in self.touches:
            if touch.name == name:
                return touch
        known = ", ".join(t.name for t in self.touches) or "none"
        raise ConfigError(f"unknown touch {name!r} (touches: {known})", file=self.origin)

    def touches_for_event(self, event: Event | str) -> list[Touch]:
        """The event-driven touches ``event`` fires (by name alone when given a name)."""
        found = []
        for touch in self.touches:
            trigger = touch.trigger
            if not isinstance(trigger, EVENT_DRIVEN):
                continue
            if trigger.matches(event) if isinstance(event, Event) else trigger.event_name == event:
                found.append(touch)
        return found

    def touches_of(self, kind: type[T]) -> list[tuple[Touch, T]]:
        """The touches whose trigger is a ``kind`` (a trigger class), with their triggers."""
        return [(t, t.trigger) for t in self.touches if isinstance(t.trigger, kind)]

    def watched_segments(self) -> list[str]:
        """Segments whose entries and exits the engine records, for segment triggers."""
        return sorted({trigger.segment for _, trigger in self.touches_of(SegmentTrigger)})

    def stage_names(self) -> dict[str, list[str]]:
        """Each journey's stage names, which ``stage("journey") == "name"`` is checked against."""
        return {j.name: [s.name for s in j.stages] for j in self.journeys.values()}

    def journey(self, name: str) -> Journey:
        try:
            return self.journeys[name]
        except KeyError:
            known = ", ".join(sorted(self.journeys)) or "none"
            raise ConfigError(
                f"unknown journey {name!r} (journeys: {known})", file=self.origin
            ) from None

    def segment_set(self) -> SegmentSet:
        """The program's named segments, parsed; raises ConfigErrors keyed ``segments.NAME``."""
        try:
            return SegmentSet(self.segments, file=self.origin)
        except ConfigErrors as exc:
            raise ConfigErrors([_segment_error(e) for e in exc.errors]) from None
        except ConfigError as exc:
            raise ConfigErrors([_segment_error(exc)]) from None

    def _segment_type_errors(self, segments: SegmentSet) -> list[ConfigError]:
        """Segment expressions checked against the trait types ``[traits]`` declares."""
        errors: list[ConfigError] = []
        for name in segments:
            errors.extend(
                check_types(
                    segments[name],
                    account_traits=self.traits.get("account", {}),
                    contact_traits=self.traits.get("contact", {}),
                    segments=segments,
                    journeys=self.stage_names(),
                    file=self.origin,
                    key=f"segments.{name}",
                )
            )
        return errors

    def _journey_errors(self, segments: SegmentSet) -> list[ConfigError]:
        """Stage criteria that do not parse, or do not type-check against ``[traits]``."""
        errors: list[ConfigError] = []
        for journey in self.journeys.values():
            for key, text in journey.expressions().items():
                try:
                    expr = parse(text)
                except ConfigError as exc:
                    errors.append(ConfigError(exc.reason, file=self.origin, key=key))
                    continue
                errors.extend(
                    check_types(
                        expr,
                        account_traits=self.traits.get("account", {}),
                        contact_traits=self.traits.get("contact", {}),
                        segments=segments,
                        journeys=self.stage_names(),
                        file=self.origin,
                        key=key,
                    )
                )
        return errors

    def _reachability_errors(self) -> list[ConfigError]:
        """Triggers and rules naming what does not exist, so no trigger can reach the touch."""
        errors: list[ConfigError] = []
        names = {t.name for t in self.touches}

        def unreachable(touch: Touch, key: str, why: str) -> None:
            errors.append(
                ConfigError(
                    f"{why}, so no trigger can reach this touch",
                    file=self.origin,
                    key=f"touches.{touch.name}.{key}",
                )
            )

        defined = Names(segments=self.segments, journeys=self.journeys, touches=names)
        for touch in self.touches:
            why = touch.trigger.unreachable(defined, touch.name) if touch.trigger else None
            if why is not None:
                unreachable(touch, "trigger", why)
            if touch.reentry.journey is not None and touch.reentry.journey not in self.journeys:
                known = ", ".join(sorted(self.journeys)) or "none"
                errors.append(
                    ConfigError(
                        f"unknown journey {touch.reentry.journey!r} (journeys: {known})",
                        file=self.origin,
                        key=f"touches.{touch.name}.reentry.journey",
                    )
                )
        errors.extend(self._ladder_cycles())
        return errors

    def _ladder_cycles(self) -> list[ConfigError]:
        waits = {touch.name: trigger.touch for touch, trigger in self.touches_of(EngagementTrigger)}
        errors = []
        for start in sorted(waits):
            seen = [start]
            current = waits.get(start)
            while current is not None and current not in seen:
                seen.append(current)
                current = waits.get(current)
            if current == start:
                errors.append(
                    ConfigError(
                        "escalation ladder loops: " + " -> ".join([*seen, start]),
                        file=self.origin,
                        key=f"touches.{start}.trigger",
                    )
                )
        return errors

    def ladder(self, touch_name: str) -> list[str]:
        """The touches ``touch_name`` escalates from, nearest first (its ladder's earlier steps)."""
        by_name = {t.name: t for t in self.touches}
        steps: list[str] = []
        current = by_name.get(touch_name)
        while current is not None and isinstance(current.trigger, EngagementTrigger):
            previous = current.trigger.touch
            if previous in steps or previous == touch_name:
                break
            steps.append(previous)
            current = by_name.get(previous)
        return steps

    def groups(self) -> dict[str, Route]:
        """The failover groups: channel names sent through ordered providers."""
        return {name: route for name, route in self.routes.items() if route.is_group}

    def problems(self, *, templates: set[str] | None = None) -> list[ConfigError]:
        """Every reference that does not resolve: channels, templates, duplicate names."""
        errors: list[ConfigError] = []
        try:
            segments = self.segment_set()
        except ConfigErrors as exc:
            errors.extend(exc.errors)
        else:
            errors.extend(self._segment_type_errors(segments))
            errors.extend(self._journey_errors(segments))
        errors.extend(self._reachability_errors())
        cadences = [(t.name, t.channel, c.rrule) for t, c in self.touches_of(CadenceTrigger)]
        errors.extend(cadence_conflicts(self.caps, cadences, file=self.origin))
        seen: set[str] = set()
        for touch in self.touches:
            key = f"touches.{touch.name}"
            if touch.name in seen:
                errors.append(ConfigError("touch defined twice", file=self.origin, key=key))
            seen.add(touch.name)
            if touch.channel not in self.channels and touch.channel not in self.groups():
                known = ", ".join(sorted({*self.channels, *self.groups()})) or "none configured"
                errors.append(
                    ConfigError(
                        f"unknown channel {touch.channel!r} (channels: {known})",
                        file=self.origin,
                        key=f"{key}.channel",
                    )
                )
            if touch.segment is not None and touch.segment not in self.segments:
                known = ", ".join(sorted(self.segments)) or "none"
                errors.append(
                    ConfigError(
                        f"unknown segment {touch.segment!r} (segments: {known})",
                        file=self.origin,
                        key=f"{key}.segment",
                    )
                )
            for need in touch.needs:
                if need not in self.freshness:
                    declared = ", ".join(sorted(self.freshness)) or "none"
                    errors.append(
                        ConfigError(
                            f"source {need!r} declares no max_staleness, so nothing can hold "
                            f"the touch for it (sources with one: {declared})",
                            file=self.origin,
                            key=f"{key}.needs",
                        )
                    )
            if touch.topic is not None and touch.topic not in self.topics:
                errors.append(
                    ConfigError(
                        unknown_topic(touch.topic, list(self.topics)),
                        file=self.origin,
                        key=f"{key}.topic",
                    )
                )
            if templates is not None and touch.template not in templates:
                known = ", ".join(sorted(templates)) or "none"
                errors.append(
                    ConfigError(
                        f"unknown template {touch.template!r} in {self.templates_dir} "
                        f"(templates: {known})",
                        file=self.origin,
                        key=f"{key}.template",
                    )
                )
        return errors


def _segment_error(error: ConfigError) -> ConfigError:
    return ConfigError(error.reason, file=error.file, key=f"segments.{error.key}")


# -- loading from TOML ------------------------------------------------------------------------


class _Reader:
    """Reads typed values out of parsed TOML, collecting errors with their keys."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.errors: list[ConfigError] = []

    def error(self, key: str, reason: str) -> None:
        self.errors.append(ConfigError(reason, file=self.origin, key=key))

    def table(self, data: Mapping[str, Any], key: str, path: str) -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            self.error(path, f"expected a table, got {type(value).__name__}")
            return {}
        return value

    def string(
        self,
        data: Mapping[str, Any],
        key: str,
        path: str,
        default: str | None = None,
        *,
        required: bool = False,
    ) -> str | None:
        value = data.get(key, default)
        if value is not None and not isinstance(value, str):
            self.error(path, f"expected a string, got {value!r}")
            return default
        if value is None and required:
            self.error(path, "is required")
        return str(value) if value is not None else None

    def name(self, name: str, path: str) -> bool:
        if _NAME.match(name):
            return True
        self.error(path, "names start with a letter and use letters, digits, '-' and '_'")
        return False


_SECTIONS = {
    "program",
    "traits",
    "delivery",
    "segments",
    "journeys",
    "topics",
    "unsubscribe",
    "tracking",
    "tiers",
    "capacity",
    "channels",
    "sources",
    "touches",
    "windows",
    "caps",
    "reserved",
    "health",
    "retention",
}
_RETRY_KEYS = {"max_attempts": int, "initial": float, "maximum": float, "jitter": float}
_PROGRAM_KEYS = {
    "name",
    "sender",
    "store",
    "templates",
    "unsubscribe_url",
    "constants",
    "goal",
    "holdout",
    "holdout_by",
    "holdout_salt",
}
_TOUCH_KEYS = {
    "trigger",
    "channel",
    "template",
    "audience",
    "segment",
    "topic",
    "reentry",
    "subject",
    "preheader",
    "priority",
    "resend_unknown",
    "goal",
    "holdout",
    "holdout_by",
    "holdout_salt",
    "needs",
    "track",
    "body",
}


def load_program(path: str | Path, *, channels: str | Path | None = None) -> Program:
    """Load a program folder (or its ``program.toml``).

    ``channels`` names another TOML file whose ``[channels]`` tables replace the program's: the
    same touches through other providers (a staging account, a demo's local fakes). Relative
    paths in it are read from the program's folder.

    Raises :class:`~onetomany.errors.ConfigErrors` listing every problem found, each with the
    file, the key and the reason.
    """
    path = Path(path)
    file = path / PROGRAM_FILE if path.is_dir() else path
    data = _read_toml(file, missing=f"no {PROGRAM_FILE} here; a program folder holds one")
    reader = _Reader(str(file))
    replacement: tuple[dict[str, Any], _Reader] | None = None
    if channels is not None:
        other = _Reader(str(channels))
        tables = _read_toml(Path(channels), missing="no such file")
        for key in sorted(set(tables) - {"channels"}):
            other.error(key, "a channels file holds [channels.NAME] tables only")
        replacement = (other.table(tables, "channels", "channels"), other)
    program = _read_program(data, reader, file.parent, channels=replacement)
    if replacement is not None:
        reader.errors[:0] = replacement[1].errors
    if reader.errors:
        raise ConfigErrors(reader.errors)
    assert program is not None
    errors = program.problems(templates=_template_names(program.base_dir / program.templates_dir))
    if errors:
        raise ConfigErrors(errors)
    return program


def _read_toml(file: Path, *, missing: str) -> dict[str, Any]:
    origin = str(file)
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(missing, file=origin) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"malformed TOML: {exc}", file=origin) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", file=origin) from exc


def _template_names(folder: Path) -> set[str]:
    from onetomany.templating import TemplateSet

    return set(TemplateSet(folder).names()) if folder.is_dir() else set()


def _read_program(
    data: Mapping[str, Any],
    reader: _Reader,
    base: Path,
    *,
    channels: tuple[dict[str, Any], _Reader] | None = None,
) -> Program | None:
    for key in data:
        if key not in _SECTIONS:
            reader.error(key, f"unknown section (known: {', '.join(sorted(_SECTIONS))})")
    head = reader.table(data, "program", "program")
    for key in set(head) - _PROGRAM_KEYS:
        reader.error(f"program.{key}", f"unknown key (known: {', '.join(sorted(_PROGRAM_KEYS))})")
    name = reader.string(head, "name", "program.name", required=True)
    if name is not None:
        reader.name(name, "program.name")
    constants = reader.table(head, "constants", "program.constants")
    delivery = reader.table(data, "delivery", "delivery")
    unsubscribe = _read_unsubscribe(reader.table(data, "unsubscribe", "unsubscribe"), reader)
    # The program's own [channels], or those of a channels file read with its own origin.
    channel_tables, channel_reader = channels or (
        reader.table(data, "channels", "channels"),
        reader,
    )
    routes, route_errors = read_routes(channel_tables, file=channel_reader.origin)
    channel_reader.errors.extend(route_errors)
    program = Program(
        name=name or "program",
        touches=_read_touches(reader.table(data, "touches", "touches"), reader),
        channels=_read_plugins(channel_tables, "channels", channel_reader, base),
        routes=routes,
        sources=_read_plugins(reader.table(data, "sources", "sources"), "sources", reader, base),
        freshness=_read_freshness(reader.table(data, "sources", "sources"), reader),
        identity=_read_identity(reader.table(data, "sources", "sources"), reader),
        templates_dir=reader.string(head, "templates", "program.templates", "templates") or "",
        store_url=reader.string(head, "store", "program.store", "onetomany.db") or "",
        sender=reader.string(head, "sender", "program.sender", ""),
        unsubscribe_url=reader.string(head, "unsubscribe_url", "program.unsubscribe_url", "") or "",
        constants=constants,
        retry=_read_retry(delivery, reader),
        concurrency=_read_concurrency(delivery, reader),
        segments=_read_segments(reader.table(data, "segments", "segments"), reader),
        journeys=read_journeys(reader.table(data, "journeys", "journeys"), reader),
        topics=_read_topics(reader.table(data, "topics", "topics"), reader),
        unsubscribe=unsubscribe,
        tracking=_read_tracking(reader.table(data, "tracking", "tracking"), unsubscribe, reader),
        traits=_read_traits(reader.table(data, "traits", "traits"), reader),
        tiers=_read_tiers(data, reader),
        windows=_read_windows(data, reader, base),
        goal=read_goal(head["goal"], "program.goal", reader) if "goal" in head else None,
        holdout=read_holdout(head, "program", reader),
        health=read_health(reader.table(data, "health", "health"), "health", reader),
        retention=read_retention(reader.table(data, "retention", "retention"), reader),
        base_dir=base,
        origin=reader.origin,
    )
    caps, errors = read_caps(
        reader.table(data, "caps", "caps"),
        file=reader.origin,
        channels=[*program.channels, *program.groups()],
        touches=[t.name for t in program.touches],
    )
    reserved, more = read_reserved(
        reader.table(data, "reserved", "reserved"),
        file=reader.origin,
        segments=program.segments,
        touches=[t.name for t in program.touches],
    )
    reader.errors.extend([*errors, *more])
    program = attrs.evolve(program, caps=caps, reserved=reserved)
    return program if not reader.errors else None


def _read_topics(section: Mapping[str, Any], reader: _Reader) -> dict[str, Topic]:
    topics, errors = read_topics(section, file=reader.origin)
    for name in list(topics):
        if not reader.name(name, f"topics.{name}"):
            del topics[name]
    for error in errors:
        reader.error(error.key or "topics", error.reason)
    return topics


def _read_tracking(
    section: Mapping[str, Any], keys: UnsubscribeSettings, reader: _Reader
) -> TrackingSettings:
    settings, errors = read_tracking(section, file=reader.origin, keys=keys)
    reader.errors.extend(errors)
    return settings


def _read_unsubscribe(section: Mapping[str, Any], reader: _Reader) -> UnsubscribeSettings:
    expanded = {k: _expand_env(v, f"unsubscribe.{k}", reader) for k, v in section.items()}
    settings, errors = read_unsubscribe(expanded, file=reader.origin)
    reader.errors.extend(errors)
    return settings


def _read_traits(section: Mapping[str, Any], reader: _Reader) -> dict[str, dict[str, str]]:
    """``[traits] account = { mrr = "float" }``: the types segments are checked against."""
    declared: dict[str, dict[str, str]] = {}
    for subject, table in section.items():
        path = f"traits.{subject}"
        if subject not in ("account", "contact"):
            reader.error(path, "unknown key (known: account, contact)")
            continue
        if not isinstance(table, dict):
            reader.error(path, 'expected a table, e.g. { mrr = "float" }')
            continue
        for trait, kind in table.items():
            if kind not in TRAIT_TYPES:
                reader.error(
                    f"{path}.{trait}", f"unknown type {kind!r} (types: {', '.join(TRAIT_TYPES)})"
                )
            else:
                declared.setdefault(subject, {})[trait] = kind
    return declared


def _read_tiers(data: Mapping[str, Any], reader: _Reader) -> TierSettings:
    settings, errors = read_tiers(
        data.get("tiers"), capacity=data.get("capacity"), file=reader.origin
    )
    reader.errors.extend(errors)
    return settings


def _read_windows(data: Mapping[str, Any], reader: _Reader, base: Path) -> WindowSettings:
    section = data.get("windows")
    if section is not None and not isinstance(section, dict):
        reader.error("windows", "expected a table")
        section = None
    settings, errors = read_windows(
        section, file=reader.origin, read_calendar=lambda name: (base / name).read_text("utf-8")
    )
    reader.errors.extend(errors)
    return settings


def _read_segments(section: Mapping[str, Any], reader: _Reader) -> dict[str, str]:
    segments = {}
    for name, text in section.items():
        path = f"segments.{name}"
        if not reader.name(name, path):
            continue
        if not isinstance(text, str):
            reader.error(
                path, f'expected an expression string, e.g. "account.mrr >= 500", got {text!r}'
            )
            continue
        segments[name] = text
    return segments


def _read_concurrency(section: Mapping[str, Any], reader: _Reader) -> int:
    value = section.get("concurrency", 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 64:
        reader.error("delivery.concurrency", f"expected a whole number from 0 to 64, got {value!r}")
        return 0
    return value


def _read_retry(section: Mapping[str, Any], reader: _Reader) -> RetryPolicy:
    values: dict[str, Any] = {}
    for key, value in section.items():
        if key == "concurrency":
            continue  # not a retry setting: _read_concurrency reads it
        kind = _RETRY_KEYS.get(key)
        path = f"delivery.{key}"
        if kind is None:
            reader.error(path, f"unknown key (known: {', '.join(sorted(_RETRY_KEYS))})")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            reader.error(path, f"expected a number >= 0, got {value!r}")
        elif kind is int and (not isinstance(value, int) or value < 1):
            reader.error(path, f"expected a whole number >= 1, got {value!r}")
        else:
            values[key] = kind(value)
    while True:
        # The policy checks its own bounds; each refusal names its key, and the rest is
        # checked again without it, so every bad key is reported at once.
        try:
            return RetryPolicy(**values)
        except ConfigError as exc:
            reader.error(f"delivery.{exc.key}", exc.reason)
            if exc.key not in values:
                return RetryPolicy()
            del values[exc.key]


#: Keys of a ``[channels.X]`` / ``[sources.X]`` table the core reads; the rest are options.
_CORE_PLUGIN_KEYS = frozenset({"plugin", "max_staleness", "identity"})
#: The contact fields a source may match its contacts by (``identity``), besides its own ids.
IDENTITY_KEYS = ("email", "phone")


def _read_identity(section: Mapping[str, Any], reader: _Reader) -> dict[str, tuple[str, ...]]:
    """Each source's ``identity``: the keys its contacts are matched by across sources."""
    found = {}
    for name, body in section.items():
        if not isinstance(body, dict) or "identity" not in body:
            continue
        keys = body["identity"]
        path = f"sources.{name}.identity"
        if not isinstance(keys, list) or not all(k in IDENTITY_KEYS for k in keys):
            reader.error(path, f"expected a list of {', '.join(IDENTITY_KEYS)}, got {keys!r}")
            continue
        found[name] = tuple(dict.fromkeys(keys))
    return found


def _read_freshness(section: Mapping[str, Any], reader: _Reader) -> dict[str, timedelta]:
    """Each source's ``max_staleness``, for the freshness guard."""
    found = {}
    for name, body in section.items():
        if isinstance(body, dict) and "max_staleness" in body:
            limit = parse_staleness(body["max_staleness"], f"sources.{name}.max_staleness", reader)
            if limit is not None:
                found[name] = limit
    return found


def _read_plugins(
    section: Mapping[str, Any], kind: str, reader: _Reader, base: Path
) -> dict[str, PluginSettings]:
    result: dict[str, PluginSettings] = {}
    for name, body in section.items():
        path = f"{kind}.{name}"
        if not reader.name(name, path):
            continue
        if not isinstance(body, dict):
            reader.error(path, "expected a table")
            continue
        if kind == "channels" and "providers" in body:
            continue  # a failover group (delivery/routes.py reads it)
        plugin = reader.string(body, "plugin", f"{path}.plugin", required=True)
        if plugin is None:
            continue
        core = _CORE_PLUGIN_KEYS | (ROUTE_KEYS if kind == "channels" else frozenset())
        options = {
            key: _expand_env(value, f"{path}.{key}", reader)
            for key, value in body.items()
            if key not in core
        }
        result[name] = PluginSettings(
            name=name, plugin=plugin, options=options, base_dir=base, origin=reader.origin
        )
    return result


#: ``${NAME}``, or ``${NAME:-fallback}`` for a value a demo may run without.
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(value: Any, path: str, reader: _Reader) -> Any:
    """Replace ``${NAME}`` with the environment variable, so secrets stay out of the file."""
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{path}.{k}", reader) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, path, reader) for v in value]
    if not isinstance(value, str):
        return value

    def lookup(match: re.Match[str]) -> str:
        name, fallback = match.group(1), match.group(2)
        if name not in os.environ and fallback is not None:
            return fallback
        if name not in os.environ:
            reader.error(path, f"environment variable {name} is not set")
            return ""
        return os.environ[name]

    return _ENV_REFERENCE.sub(lookup, value)


def _read_touches(section: Mapping[str, Any], reader: _Reader) -> list[Touch]:
    touches = []
    for name, body in section.items():
        path = f"touches.{name}"
        if not reader.name(name, path):
            continue
        if not isinstance(body, dict):
            reader.error(path, "expected a table")
            continue
        for key in body:
            if key not in _TOUCH_KEYS:
                reader.error(
                    f"{path}.{key}", f"unknown key (known: {', '.join(sorted(_TOUCH_KEYS))})"
                )
        trigger = read_trigger(body.get("trigger"), f"{path}.trigger", reader)
        channel = reader.string(body, "channel", f"{path}.channel", required=True)
        template = reader.string(body, "template", f"{path}.template", name)
        audience = _read_audience(body.get("audience", {}), f"{path}.audience", reader)
        segment = reader.string(body, "segment", f"{path}.segment")
        topic = reader.string(body, "topic", f"{path}.topic")
        reentry = _read_reentry(body.get("reentry", "occurrence"), f"{path}.reentry", reader)
        subject = reader.string(body, "subject", f"{path}.subject")
        preheader = reader.string(body, "preheader", f"{path}.preheader")
        priority = body.get("priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool):
            reader.error(f"{path}.priority", f"expected a whole number, got {priority!r}")
            priority = 0
        resend_unknown = body.get("resend_unknown", False)
        if not isinstance(resend_unknown, bool):
            reader.error(
                f"{path}.resend_unknown", f"expected true or false, got {resend_unknown!r}"
            )
            resend_unknown = False
        goal = read_goal(body["goal"], f"{path}.goal", reader) if "goal" in body else None
        holdout = read_holdout(body, path, reader)
        needs = body.get("needs", [])
        if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
            reader.error(f"{path}.needs", f"expected a list of source names, got {needs!r}")
            needs = []
        track = body.get("track", True)
        if not isinstance(track, bool):
            reader.error(f"{path}.track", f"expected true or false, got {track!r}")
            track = True
        body_format = body.get("body", "text")
        if body_format not in BODY_FORMATS:
            reader.error(
                f"{path}.body", f"expected one of {', '.join(BODY_FORMATS)}, got {body_format!r}"
            )
            body_format = "text"
        if channel and template and audience and reentry:
            touches.append(
                Touch(
                    name=name,
                    trigger=trigger,
                    channel=channel,
                    template=template,
                    audience=audience,
                    segment=segment,
                    topic=topic,
                    reentry=reentry,
                    subject=subject,
                    preheader=preheader,
                    priority=priority,
                    resend_unknown=resend_unknown,
                    goal=goal,
                    holdout=holdout,
                    needs=needs,
                    track=track,
                    body=body_format,
                )
            )
    return touches


_REENTRY_FORMS = (
    '"occurrence" (the default), "once", { per = "stage", journey = "onboarding" } '
    "or { per_days = 30 }"
)


def _read_reentry(body: object, path: str, reader: _Reader) -> Reentry | None:
    if body in ("occurrence", "once"):
        return Reentry(kind=str(body))
    if isinstance(body, dict) and set(body) == {"per", "journey"} and body["per"] == "stage":
        journey = body["journey"]
        if isinstance(journey, str) and journey:
            return Reentry(kind="stage", journey=journey)
    if isinstance(body, dict) and set(body) == {"per_days"}:
        days = body["per_days"]
        if isinstance(days, int) and not isinstance(days, bool) and days >= 1:
            return Reentry(kind="period", days=days)
    reader.error(path, f"expected {_REENTRY_FORMS}, got {body!r}")
    return None


def _read_audience(body: object, path: str, reader: _Reader) -> Audience | None:
    if not isinstance(body, dict):
        reader.error(path, 'expected a table, e.g. { roles = ["sponsor", "leader"] }')
        return None
    roles = body.get("roles", [])
    every = body.get("every", False)
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        reader.error(f"{path}.roles", f"expected a list of role names, got {roles!r}")
        return None
    if not isinstance(every, bool):
        reader.error(f"{path}.every", f"expected true or false, got {every!r}")
        return None
    unknown = set(body) - {"roles", "every"}
    if unknown:
        reader.error(path, f"unknown key(s) {sorted(unknown)} (known: roles, every)")
        return None
    return Audience(roles=tuple(roles), every=every)
