"""The suppression list's values: addresses and phone numbers never to be contacted again.

An entry is keyed by its **normalised** address, so ``Ana@Exämple.test`` and
``ana@xn--exmple-cua.test`` are one entry, and ``+55 11 91234-5678`` and ``+5511912345678``
another: an email is lower-cased with its domain in IDNA ASCII form; a phone number is written
in E.164. CSV import and export read and write the same columns
(:data:`CSV_COLUMNS`); a file with one bad line is refused whole, naming the line.
"""

from __future__ import annotations

import csv
import enum
import io
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import attrs
import phonenumbers
from email_validator import EmailNotValidError, validate_email

from onetomany.errors import InputError
from onetomany.model.emails import plain_email

__all__ = [
    "CSV_COLUMNS",
    "Reason",
    "Suppression",
    "normalise_address",
    "read_csv",
    "write_csv",
]


class Reason(enum.StrEnum):
    """Why an address is suppressed."""

    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    MANUAL = "manual"
    LEGAL = "legal"


#: Reasons that stand for the person rather than one mailbox or number: they stop the sends
#: that reach the contact without an address of theirs (in-app messages, CSM tasks) too.
PERSON_REASONS = frozenset({Reason.MANUAL, Reason.LEGAL})


def normalise_address(address: str, *, region: str | None = None) -> str:
    """``address`` as the suppression list keys it: an email lower-cased with an ASCII
    (IDNA) domain, or a phone number in E.164 (``region`` reads a national number).
    Raises :class:`~onetomany.errors.InputError` naming the address when it is neither."""
    text = address.strip() if isinstance(address, str) else ""
    if not text:
        raise InputError(f"suppression address {address!r}: empty; give an email or a phone")
    if "@" in text:
        if plain_email(text):
            # A plain ASCII address email-validator accepts unchanged (its domain is already
            # lower case): the key is the address lower-cased, without the validator's cost
            # (a tenth of a millisecond, paid per row by the suppression policy).
            return text.lower()
        try:
            valid = validate_email(text, check_deliverability=False, test_environment=True)
        except EmailNotValidError as exc:
            raise InputError(f"suppression address {address!r}: {exc}") from exc
        return f"{valid.local_part.lower()}@{valid.ascii_domain.lower()}"
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InputError(
            f"suppression address {address!r}: neither an email nor a phone number ({exc}); "
            "write phone numbers in E.164 form, e.g. +5511912345678"
        ) from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InputError(f"suppression address {address!r}: not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _reason(value: Reason | str) -> Reason:
    try:
        return Reason(value)
    except ValueError:
        known = ", ".join(r.value for r in Reason)
        raise InputError(f"suppression reason {value!r} is not one of {known}") from None


def _aware(_i: object, _a: object, value: datetime) -> None:
    if value.tzinfo is None:
        raise InputError(f"suppression time {value.isoformat()} has no timezone")


@attrs.frozen(kw_only=True)
class Suppression:
    """One suppressed address: why, who said so (``source``: ``api``, ``import``, a provider
    webhook), when, and an optional note."""

    address: str = attrs.field(converter=normalise_address)
    reason: Reason = attrs.field(converter=_reason)
    source: str = "api"
    at: datetime = attrs.field(validator=_aware)
    note: str = ""

    @property
    def is_phone(self) -> bool:
        return "@" not in self.address

    def as_dict(self) -> dict[str, str]:
        return {
            "address": self.address,
            "reason": self.reason.value,
            "source": self.source,
            "at": self.at.isoformat(),
            "note": self.note,
        }


#: The columns of an exported file, in order; an import needs ``address`` and ``reason``.
CSV_COLUMNS = ("address", "reason", "source", "at", "note")


def read_csv(text: str, *, now: datetime, source: str = "import") -> list[Suppression]:
    """Entries from CSV ``text`` (a header line naming :data:`CSV_COLUMNS`; ``source``,
    ``at`` and ``note`` optional). Raises one :class:`~onetomany.errors.InputError` listing
    every bad line (``line N: ...``), so a file is taken whole or not at all."""
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in ("address", "reason") if name not in header]
    if missing:
        raise InputError(
            f"suppression CSV: the header {header or '(none)'} lacks {', '.join(missing)}; "
            f"expected columns {', '.join(CSV_COLUMNS)}"
        )
    unknown = [name for name in header if name not in CSV_COLUMNS]
    if unknown:
        raise InputError(
            f"suppression CSV: unknown column(s) {', '.join(unknown)}; "
            f"expected {', '.join(CSV_COLUMNS)}"
        )
    entries: list[Suppression] = []
    problems: list[str] = []
    for record in reader:
        line = reader.line_num
        row = {(k or "").strip(): (v or "").strip() for k, v in record.items() if k is not None}
        if None in record:
            problems.append(f"line {line}: more fields than the header names")
            continue
        try:
            at = datetime.fromisoformat(row["at"]) if row.get("at") else now
            if at.tzinfo is None:
                at = at.replace(tzinfo=UTC)
            entries.append(
                Suppression(
                    address=row["address"],
                    reason=row["reason"],
                    source=row.get("source") or source,
                    at=at,
                    note=row.get("note", ""),
                )
            )
        except (InputError, ValueError) as exc:
            problems.append(f"line {line}: {exc}")
    if problems:
        shown = "\n".join(f"  {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise InputError(
            f"suppression CSV: {len(problems)} bad line(s), nothing imported:\n{shown}{more}"
        )
    return entries


def write_csv(entries: Iterable[Suppression]) -> str:
    """The entries as CSV text with a header line, in :data:`CSV_COLUMNS` order."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for entry in entries:
        writer.writerow(entry.as_dict())
    return out.getvalue()


def addresses_of(email: str | None, phone: str | None) -> Sequence[str]:
    """The normalised keys of a contact's email and phone (those that normalise)."""
    keys = []
    for value in (email, phone):
        if value:
            try:
                keys.append(normalise_address(value))
            except InputError:
                # A stored contact's address was checked when it was saved; one that no longer
                # parses (a stricter library) is looked up as written.
                keys.append(value.strip().lower())
    return keys
