"""Locales: how a contact's locale picks a template variant, and the locale-aware filters.

A locale is a BCP 47-like tag: a language (2-3 letters), then optional script and region
subtags, separated by ``-`` or ``_`` (``en``, ``pt-BR``, ``pt_br``, ``zh-Hant-TW``). It is
canonicalised to ``pt-BR`` form (language lower-case, script title-case, region upper-case),
which is how variant files are named. Anything else (``"pt BR"``, ``"portuguese!"``, ``""``) is
malformed: a :class:`~onetomany.errors.TemplateError` naming the value.

The filters (``date``, ``datetime``, ``number``, ``percent``, ``money``) format with Babel in the
locale of the render: the ``locale`` context variable (set by ``TemplateSet.render(...,
locale=...)`` and by the Composer), else ``contact.locale``, else ``en``. A well-formed locale
Babel does not know (``pt-XX``) falls back to its language (``pt``), then to ``en``; no error.
Datetimes are shown in the ``timezone`` context variable, else ``contact.timezone``, else UTC.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent
from jinja2 import Undefined, pass_context
from jinja2.runtime import Context

from onetomany.errors import TemplateError

__all__ = ["babel_locale", "canonical_locale", "locale_chain", "locale_filters"]

_LOCALE = re.compile(
    r"^(?P<lang>[A-Za-z]{2,3})(?:[-_](?P<script>[A-Za-z]{4}))?(?:[-_](?P<region>[A-Za-z]{2}|\d{3}))?"
    r"(?P<rest>(?:[-_][A-Za-z0-9]{1,8})*)$"
)
_FORMATS = frozenset({"short", "medium", "long", "full"})


def canonical_locale(locale: str, *, template: str = "locale") -> str:
    """``pt_br`` -> ``pt-BR``; a malformed locale is a TemplateError naming it (and
    ``template``)."""
    if not isinstance(locale, str):
        raise _malformed(locale, template)
    return _canonical(locale, template)  # every render asks, and few locales are ever seen


def _malformed(locale: object, template: str) -> TemplateError:
    return TemplateError(
        f"malformed locale {locale!r}; write a language tag such as 'en', 'pt-BR' or 'id'",
        template=template,
    )


@functools.lru_cache(maxsize=1024)
def _canonical(locale: str, template: str) -> str:
    found = _LOCALE.match(locale.strip())
    if found is None:
        raise _malformed(locale, template)
    parts = [found["lang"].lower()]
    if found["script"]:
        parts.append(found["script"].title())
    if found["region"]:
        parts.append(found["region"].upper())
    parts += [part for part in re.split(r"[-_]", found["rest"]) if part]
    return "-".join(parts)


def locale_chain(locale: str, *, template: str = "locale") -> list[str]:
    """The locale and its fallbacks, most specific first: ``zh-Hant-TW`` -> ``zh-Hant-TW``,
    ``zh-Hant``, ``zh``."""
    parts = canonical_locale(locale, template=template).split("-")
    return ["-".join(parts[:size]) for size in range(len(parts), 0, -1)]


@functools.lru_cache(maxsize=256)
def babel_locale(locale: str) -> Locale:
    """The Babel locale for ``locale``: itself, else its language, else English."""
    for candidate in [*locale_chain(locale), "en"]:
        try:
            return Locale.parse(candidate, sep="-")
        except (UnknownLocaleError, ValueError):
            continue
    return Locale("en")  # pragma: no cover - English is always there


def _lookup(context: Context, key: str) -> Any:
    value = context.get(key)
    if value is None:
        contact = context.get("contact")
        if isinstance(contact, Mapping):
            value = contact.get(key)
        elif contact is not None:
            value = getattr(contact, key, None)
    return value


def _render_locale(context: Context) -> Locale:
    value = _lookup(context, "locale")
    return babel_locale(str(value) if value else "en")


def _render_zone(context: Context) -> ZoneInfo:
    value = _lookup(context, "timezone") or "UTC"
    try:
        return ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {value!r} for the datetime filter") from exc


def _format_name(format: str) -> str:
    if format not in _FORMATS:
        # Babel would take anything else as a CLDR pattern; keep templates to the names.
        raise ValueError(
            f"unknown date format {format!r}; use one of {', '.join(sorted(_FORMATS))}"
        )
    return format


def _defined(value: Any) -> None:
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises the usual "undefined variable" error


def _as_datetime(value: Any) -> datetime:
    _defined(value)
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise ValueError(f"not a date or datetime: {value!r}") from exc
    else:
        raise ValueError(f"not a date or datetime: {value!r}")
    # A naive value is taken as UTC, the way the store keeps times.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _as_number(value: Any) -> Decimal | int | float:
    _defined(value)
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, int | float | Decimal):
        return value
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation as exc:
            raise ValueError(f"not a number: {value!r}") from exc
    raise ValueError(f"not a number: {value!r}")


@pass_context
def date_filter(context: Context, value: Any, format: str = "medium") -> str:
    """A date (or the date of a datetime, in the contact's timezone) in the render locale."""
    if isinstance(value, datetime) or (isinstance(value, str) and "T" in value):
        day = _as_datetime(value).astimezone(_render_zone(context)).date()
    elif isinstance(value, date):
        day = value
    else:
        day = _as_datetime(value).date()
    return format_date(day, _format_name(format), locale=_render_locale(context))


@pass_context
def datetime_filter(context: Context, value: Any, format: str = "medium") -> str:
    """A datetime in the contact's timezone, in the render locale."""
    return format_datetime(
        _as_datetime(value),
        _format_name(format),
        tzinfo=_render_zone(context),
        locale=_render_locale(context),
    )


@pass_context
def number_filter(context: Context, value: Any) -> str:
    """A number with the locale's grouping and decimal signs (``1.234,5`` in pt-BR)."""
    return format_decimal(_as_number(value), locale=_render_locale(context))


@pass_context
def percent_filter(context: Context, value: Any) -> str:
    """A ratio as a percentage: ``0.25`` -> ``25%`` (``25 %`` in some locales)."""
    return format_percent(_as_number(value), locale=_render_locale(context))


@pass_context
def money_filter(context: Context, value: Any, currency: str) -> str:
    """An amount in ``currency`` (an ISO 4217 code): ``1234.5|money("BRL")`` -> ``R$ 1.234,50``."""
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
        raise ValueError(f"money needs an ISO 4217 currency code, not {currency!r}")
    return format_currency(_as_number(value), currency.upper(), locale=_render_locale(context))


def locale_filters() -> dict[str, Callable[..., str]]:
    """The filters every template gets (a program's own filters may override them)."""
    return {
        "date": date_filter,
        "datetime": datetime_filter,
        "number": number_filter,
        "percent": percent_filter,
        "money": money_filter,
    }
