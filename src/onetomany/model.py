"""The value classes everything else passes around.

They are frozen, validate their own invariants, and never do I/O. Change one with
:func:`attrs.evolve`; build one from foreign data with its ``from_mapping`` classmethod.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
import phonenumbers
from email_validator import EmailNotValidError, validate_email

from onetomany.errors import InvalidAccountError, InvalidContactError, InvalidEventError
from onetomany.plaindata import json_problem, text_problem


def _traits(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


def _optional_str(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


class ChannelKind(enum.StrEnum):
    """What a channel delivers; decides how a touch's template is rendered for it."""

    EMAIL = "email"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    INAPP = "inapp"
    CSM = "csm"


@attrs.frozen(kw_only=True)
class Account:
    """A customer company: its id, display name and traits (plan, mrr, seats, ...)."""

    id: str
    name: str = ""
    traits: Mapping[str, Any] = attrs.field(factory=dict, converter=_traits)

    def __attrs_post_init__(self) -> None:
        _check_plain(InvalidAccountError, self.id, {"name": self.name}, {"traits": self.traits})

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Account:
        known = {"id", "name"}
        return cls(
            id=str(data["id"]),
            name=str(data.get("name") or ""),
            traits={k: v for k, v in data.items() if k not in known},
        )


@attrs.frozen(kw_only=True)
class Contact:
    """A person inside an account, with the channels and preferences to reach them.

    ``email`` is normalised (domain lower-cased) and ``phone`` is stored in E.164. Both are
    checked on construction: an invalid one raises :class:`InvalidContactError` naming the
    contact and the field.
    """

    id: str
    account_id: str | None = None
    name: str = ""
    email: str | None = attrs.field(default=None, converter=_optional_str)
    phone: str | None = attrs.field(default=None, converter=_optional_str)
    role: str | None = attrs.field(default=None, converter=_optional_str)
    locale: str = "en"
    timezone: str = "UTC"
    consent: Mapping[str, bool] = attrs.field(factory=dict, converter=_traits)
    traits: Mapping[str, Any] = attrs.field(factory=dict, converter=_traits)

    def __attrs_post_init__(self) -> None:
        _check_plain(
            InvalidContactError,
            self.id,
            {
                "account_id": self.account_id,
                "name": self.name,
                "role": self.role,
                "locale": self.locale,
            },
            {"consent": self.consent, "traits": self.traits},
        )
        if self.email is not None:
            object.__setattr__(self, "email", _checked_email(self.id, self.email))
        if self.phone is not None:
            object.__setattr__(self, "phone", _checked_phone(self.id, self.phone))
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidContactError(
                self.id, "timezone", self.timezone, "unknown IANA zone"
            ) from exc

    @classmethod
    def restored(cls, **fields: Any) -> Contact:
        """A contact read back from the store, which only ever saves checked contacts.

        The email, phone and timezone were checked (and normalised) when it was saved; checking
        them again on every read cost more than the query itself (email validation alone is
        a quarter of a millisecond per address), and a tick reads every contact it may touch.
        """
        contact = cls.__new__(cls)
        for field in attrs.fields(cls):
            value = fields[field.name]
            if field.converter is not None:
                value = field.converter(value)
            object.__setattr__(contact, field.name, value)
        return contact

    @property
    def first_name(self) -> str:
        return self.name.split(" ", 1)[0] if self.name else ""

    def allows(self, kind: ChannelKind | str) -> bool:
        """Whether the contact consented to ``kind``; no recorded answer means yes."""
        return bool(self.consent.get(str(kind), True))


def _check_plain(
    error: type[InvalidAccountError | InvalidContactError],
    id: str,
    texts: Mapping[str, str | None],
    data: Mapping[str, Mapping[str, Any]],
) -> None:
    """Refuses an empty id, text no database stores, and data that is not plain JSON."""
    if not isinstance(id, str) or not id.strip():
        raise error(str(id), "id", id, "an id must be non-empty text")
    for field, value in {"id": id, **texts}.items():
        if value is not None and (problem := text_problem(value, limit=255)):
            raise error(id, field, value, problem)
    for field, mapping in data.items():
        if problem := json_problem(mapping, name=field):
            raise error(id, field, _Elided(), problem)


class _Elided:
    """Stands for a value too large to repeat in an error; the reason names the path."""

    def __repr__(self) -> str:
        return "(see below)"


def _checked_email(contact_id: str, address: str) -> str:
    # No DNS look-up: validation must be fast and offline. The reserved ``.test`` domain is
    # accepted so examples and test suites can use addresses that can never reach anyone.
    try:
        return validate_email(address, check_deliverability=False, test_environment=True).normalized
    except EmailNotValidError as exc:
        raise InvalidContactError(contact_id, "email", address, str(exc)) from exc


def _checked_phone(contact_id: str, number: str) -> str:
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidContactError(
            contact_id, "phone", number, f"{exc}; write it in E.164 form, e.g. +5511912345678"
        ) from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidContactError(contact_id, "phone", number, "not a valid number for its region")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@attrs.frozen(kw_only=True)
class Event:
    """Something that happened to an account or a contact, at a time.

    ``occurred_at`` must carry a timezone: a naive datetime is ambiguous and is refused rather
    than guessed. ``id`` makes tracking idempotent: tracking the same id twice stores it once.
    """

    name: str
    occurred_at: datetime
    account_id: str | None = None
    contact_id: str | None = None
    properties: Mapping[str, Any] = attrs.field(factory=dict, converter=_traits)
    id: str = attrs.field(factory=lambda: uuid.uuid4().hex)

    def __attrs_post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise InvalidEventError(f"event {self.id!r}: the name is empty")
        for field, value, limit in (
            ("id", self.id, 64),
            ("name", self.name, 128),
            ("account_id", self.account_id, 255),
            ("contact_id", self.contact_id, 255),
        ):
            if value is None:
                continue
            if not isinstance(value, str) or not value.strip():
                raise InvalidEventError(
                    f"event {self.name!r}: {field} {value!r} is empty or not text; "
                    "pass None for a subject the event does not name"
                )
            if problem := text_problem(value, limit=limit):
                raise InvalidEventError(f"event {self.name!r}: {field} {value!r} {problem}")
        if problem := json_problem(self.properties, name="properties"):
            raise InvalidEventError(f"event {self.name!r} ({self.id}): {problem}")
        if self.occurred_at.tzinfo is None or self.occurred_at.utcoffset() is None:
            raise InvalidEventError(
                f"event {self.name!r} ({self.id}): occurred_at {self.occurred_at.isoformat()} "
                "has no timezone; pass an aware datetime, e.g. datetime.now(timezone.utc)"
            )
        if self.account_id is None and self.contact_id is None:
            raise InvalidEventError(
                f"event {self.name!r} ({self.id}): names neither an account nor a contact"
            )
        object.__setattr__(self, "occurred_at", self.occurred_at.astimezone(UTC))


@attrs.frozen(kw_only=True)
class Message:
    """One rendered message, ready for a channel to deliver to one recipient.

    ``idempotency_key`` is stable across retries of the same outbox row: channels pass it to
    providers that honour one, so a retried send cannot become a second message.
    """

    idempotency_key: str
    channel: str
    kind: ChannelKind
    to: str
    touch: str = ""
    contact_id: str | None = None
    account_id: str | None = None
    subject: str = ""
    preheader: str = ""
    html: str = ""
    text: str = ""
    sender: str | None = None
    reply_to: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_traits)
    data: Mapping[str, Any] = attrs.field(factory=dict, converter=_traits)
    created_at: datetime | None = None


@attrs.frozen(kw_only=True)
class DeliveryResult:
    """What a channel reports after a provider accepted a message."""

    provider_message_id: str | None = None
    detail: str = ""


class OutboxStatus(enum.StrEnum):
    """Where an outbox row is in its life."""

    PENDING = "pending"
    CLAIMED = "claimed"
    SENT = "sent"
    DEAD = "dead"


@attrs.frozen(kw_only=True)
class Delivery:
    """The record of one attempt to deliver one outbox row."""

    outbox_id: int
    idempotency_key: str
    channel: str
    attempt: int
    status: str
    at: datetime
    touch: str = ""
    contact_id: str | None = None
    account_id: str | None = None
    provider_message_id: str | None = None
    error: str | None = None
