"""The value classes everything else passes around.

They are frozen, validate their own invariants, and never do I/O. Change one with
:func:`attrs.evolve`; build one from foreign data with its ``from_mapping`` classmethod.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
import phonenumbers
from email_validator import EmailNotValidError

from onetomany.errors import InvalidAccountError, InvalidContactError, InvalidEventError
from onetomany.model.emails import normalized_email
from onetomany.model.plaindata import json_problem, text_problem


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


class Unset(enum.Enum):
    """The type of :data:`UNSET`: a field a caller did not give (``None`` clears one)."""

    UNSET = enum.auto()

    def __repr__(self) -> str:
        return "UNSET"


#: The default of every field of :class:`Account` and :class:`Contact` but ``id``: the caller
#: said nothing about it, so :meth:`Engine.identify <onetomany.Engine.identify>` keeps what is
#: stored (or the field's default, for a new profile).
UNSET: Final = Unset.UNSET


def _merged(stored: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """``stored`` updated key by key with ``given``, where a ``None`` value removes the key."""
    merged = dict(stored)
    for key, value in given.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


@attrs.frozen(kw_only=True, init=False)
class Account:
    """A customer company: its id, display name and traits (plan, mrr, seats, ...).

    An account remembers which fields its caller gave (:attr:`given`): saving it changes only
    those, and its traits merge into the stored ones key by key, a trait set to ``None``
    being removed. See :meth:`onto`.
    """

    id: str
    name: str = ""
    traits: Mapping[str, Any] = attrs.field(factory=dict, converter=_traits)
    #: The names of the fields the caller gave (``id`` always); ignored by ``==``.
    given: frozenset[str] = attrs.field(init=False, eq=False, repr=False, default=frozenset())

    def __init__(
        self,
        *,
        id: str,
        name: str | Unset = UNSET,
        traits: Mapping[str, Any] | Unset = UNSET,
    ) -> None:
        # Straight-line, as Contact's (a sync builds one per record).
        put = object.__setattr__
        given = ["id"]
        put(self, "id", id)
        if name is not UNSET:
            given.append("name")
        put(self, "name", "" if name is UNSET else name)
        if traits is not UNSET:
            given.append("traits")
        put(self, "traits", {} if traits is UNSET else _traits(traits))
        put(self, "given", frozenset(given))
        self.__attrs_post_init__()

    def __attrs_post_init__(self) -> None:
        _check_plain(InvalidAccountError, self.id, {"name": self.name}, {"traits": self.traits})

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Account:
        """An account from a flat mapping: ``id``, ``name`` if present, the rest are traits."""
        known = {"id", "name"}
        fields: dict[str, Any] = {"id": str(data["id"])}
        if "name" in data:
            fields["name"] = str(data["name"] or "")
        traits = {k: v for k, v in data.items() if k not in known}
        if traits:
            fields["traits"] = traits
        return cls(**fields)

    def onto(self, stored: Account | None) -> Account:
        """``stored`` (or a new account, if ``None``) updated with what this one gives.

        Fields not given keep their stored values; traits merge key by key and a trait given
        as ``None`` is removed. The result gives every field.
        """
        base_name, base_traits = ("", {}) if stored is None else (stored.name, stored.traits)
        name = self.name if "name" in self.given else base_name
        traits = _merged(base_traits, self.traits) if "traits" in self.given else base_traits
        # Both sides were checked when built: the merge is set, not checked again.
        merged = Account.__new__(Account)
        object.__setattr__(merged, "id", self.id)
        object.__setattr__(merged, "name", name)
        object.__setattr__(merged, "traits", dict(traits))
        object.__setattr__(merged, "given", _ACCOUNT_NAMES)
        return merged


@attrs.frozen(kw_only=True, init=False)
class Contact:
    """A person inside an account, with the channels and preferences to reach them.

    ``email`` is normalised (domain lower-cased) and ``phone`` is stored in E.164. Both are
    checked on construction: an invalid one raises :class:`InvalidContactError` naming the
    contact and the field.

    A contact remembers which fields its caller gave (:attr:`given`); saving it changes only
    those (see :meth:`onto`). ``None`` for ``account_id``, ``email``, ``phone`` or ``role``
    clears the field; traits and consent merge key by key, a trait given as ``None`` being
    removed. A field never given reads as its default.
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
    #: The names of the fields the caller gave (``id`` always); ignored by ``==``.
    given: frozenset[str] = attrs.field(init=False, eq=False, repr=False, default=frozenset())

    def __init__(
        self,
        *,
        id: str,
        account_id: str | Unset | None = UNSET,
        name: str | Unset = UNSET,
        email: str | Unset | None = UNSET,
        phone: str | Unset | None = UNSET,
        role: str | Unset | None = UNSET,
        locale: str | Unset = UNSET,
        timezone: str | Unset = UNSET,
        consent: Mapping[str, bool] | Unset = UNSET,
        traits: Mapping[str, Any] | Unset = UNSET,
    ) -> None:
        # Straight-line rather than a dict of the given fields through __attrs_init__: a
        # sync builds a contact per record, and that detour cost as much as the checks.
        put = object.__setattr__
        given = ["id"]
        put(self, "id", id)
        if account_id is not UNSET:
            given.append("account_id")
        put(self, "account_id", None if account_id is UNSET else account_id)
        if name is not UNSET:
            given.append("name")
        put(self, "name", "" if name is UNSET else name)
        if email is not UNSET:
            given.append("email")
        put(self, "email", None if email is UNSET else _optional_str(email))
        if phone is not UNSET:
            given.append("phone")
        put(self, "phone", None if phone is UNSET else _optional_str(phone))
        if role is not UNSET:
            given.append("role")
        put(self, "role", None if role is UNSET else _optional_str(role))
        if locale is not UNSET:
            given.append("locale")
        put(self, "locale", "en" if locale is UNSET else locale)
        if timezone is not UNSET:
            given.append("timezone")
        put(self, "timezone", "UTC" if timezone is UNSET else timezone)
        if consent is not UNSET:
            given.append("consent")
        put(self, "consent", {} if consent is UNSET else _traits(consent))
        if traits is not UNSET:
            given.append("traits")
        put(self, "traits", {} if traits is UNSET else _traits(traits))
        put(self, "given", frozenset(given))
        self.__attrs_post_init__()

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
        It gives every field.
        """
        contact = cls.__new__(cls)
        for name, converter in _CONTACT_FIELDS:
            value = fields[name]
            if converter is not None:
                value = converter(value)
            object.__setattr__(contact, name, value)
        object.__setattr__(contact, "given", _CONTACT_NAMES)
        return contact

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Contact:
        """A contact from a flat mapping: its fields, only those present; the rest are traits.

        ``consent`` and ``traits`` keys, if present, are merged with the other keys' traits.
        """
        fields = {k: v for k, v in data.items() if k in _CONTACT_NAMES}
        extra = {k: v for k, v in data.items() if k not in _CONTACT_NAMES}
        if extra:
            fields["traits"] = {**dict(fields.get("traits") or {}), **extra}
        fields["id"] = str(data["id"])
        return cls(**fields)

    def onto(self, stored: Contact | None) -> Contact:
        """``stored`` (or a new contact with the defaults, if ``None``) updated with what this
        one gives.

        Fields not given keep their stored values; ``None`` clears a nullable field; consent
        merges channel by channel and traits key by key, a trait given as ``None`` being
        removed. The result gives every field; it is not checked again (both sides were).
        """
        base = stored if stored is not None else _NEW_CONTACT
        fields: dict[str, Any] = {}
        for name, _ in _CONTACT_FIELDS:
            if name not in self.given:
                fields[name] = getattr(base, name)
            elif name == "traits":
                fields[name] = _merged(base.traits, self.traits)
            elif name == "consent":
                fields[name] = {**base.consent, **self.consent}
            else:
                fields[name] = getattr(self, name)
        fields["id"] = self.id
        # Every value is already converted (both sides were built checked): set, not redo.
        merged = Contact.__new__(Contact)
        for name, value in fields.items():
            object.__setattr__(merged, name, value)
        object.__setattr__(merged, "given", _CONTACT_NAMES)
        return merged

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


#: Each field of a contact (not ``given``) with its converter, as ``restored`` applies them.
_CONTACT_FIELDS: Final[tuple[tuple[str, Callable[[Any], Any] | None], ...]] = tuple(
    (field.name, cast("Callable[[Any], Any] | None", field.converter))
    for field in attrs.fields(Contact)
    if field.init
)
_CONTACT_NAMES: Final = frozenset(name for name, _ in _CONTACT_FIELDS)
#: Every field of an account a caller can give.
_ACCOUNT_NAMES: Final = frozenset({"id", "name", "traits"})
#: The defaults a new contact starts from (its id is replaced by the caller's).
_NEW_CONTACT: Final = Contact(id="new")


def _checked_email(contact_id: str, address: str) -> str:
    # No DNS look-up: validation must be fast and offline (see onetomany.model.emails).
    try:
        return normalized_email(address)
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
    #: The provider that took it, when the channel is a failover group (the member's name).
    provider: str | None = None


class OutboxStatus(enum.StrEnum):
    """Where an outbox row is in its life."""

    PENDING = "pending"
    CLAIMED = "claimed"
    SENT = "sent"
    DEAD = "dead"
    #: Stopped by a send policy (suppressed, unsubscribed, ...): final, never an attempt.
    SKIPPED = "skipped"
    #: Sent, and no answer came back: the provider may have accepted it. Final unless the
    #: channel's provider drops repeated keys or the touch asks to resend.
    UNKNOWN = "unknown"


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
    #: The channel that sent it: a failover group's member, else the channel itself (None in
    #: records written before providers were recorded).
    provider: str | None = None
