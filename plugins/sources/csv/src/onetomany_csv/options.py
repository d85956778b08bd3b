"""The CSV source's options, read and checked once, when the source is created.

Every mistake here is a :class:`~onetomany.errors.ConfigError` naming the option key, so a
typo in a program fails when the program loads rather than on the first sync.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from onetomany.errors import ConfigError
from onetomany.plugins.settings import PluginSettings

#: The files a CSV source can read, in the order they are read and reported.
FILE_KINDS: Final = ("accounts", "contacts", "events")

#: What a trait column can be coerced to with the ``types`` option.
TRAIT_TYPES: Final = frozenset({"str", "int", "float", "bool", "date", "datetime"})

_KNOWN_OPTIONS: Final = frozenset(
    {*FILE_KINDS, "columns", "types", "timezone", "delimiter", "encoding"}
)


@attrs.frozen(kw_only=True)
class CsvOptions:
    """The checked options of one CSV source.

    ``files`` holds only the files the program configured, resolved against the program's
    folder; ``columns`` maps, per file, one of our names to the file's column header.
    """

    files: Mapping[str, Path]
    columns: Mapping[str, Mapping[str, str]]
    types: Mapping[str, str]
    zone: ZoneInfo | None
    delimiter: str
    encoding: str


def read_options(settings: PluginSettings) -> CsvOptions:
    """Check ``settings.options`` and return them typed."""
    return CsvOptions(
        files=_files(settings),
        columns=_columns(settings),
        types=_types(settings),
        zone=_zone(settings),
        delimiter=_delimiter(settings),
        encoding=_encoding(settings),
    )


def option_error(settings: PluginSettings, key: str, reason: str) -> ConfigError:
    """A :class:`ConfigError` pointing at option ``key`` of this source in the program."""
    return ConfigError(reason, file=settings.origin or None, key=f"{settings.name}.{key}")


def _files(settings: PluginSettings) -> dict[str, Path]:
    # Unknown keys are checked here, before anything else, because a misspelt file option
    # ("acounts") would otherwise surface as the less helpful "no file configured".
    unknown = sorted(set(settings.options) - _KNOWN_OPTIONS)
    if unknown:
        known = ", ".join(sorted(_KNOWN_OPTIONS))
        raise option_error(settings, unknown[0], f"unknown option (known: {known})")
    files = {kind: settings.path(kind) for kind in FILE_KINDS if kind in settings.options}
    if not files:
        raise option_error(
            settings, "accounts", "the csv source needs at least one of: accounts, contacts, events"
        )
    return files


def _columns(settings: PluginSettings) -> dict[str, dict[str, str]]:
    raw: dict[Any, Any] = settings.get("columns", dict, {})
    columns: dict[str, dict[str, str]] = {}
    for kind, mapping in raw.items():
        key = f"columns.{kind}"
        if kind not in FILE_KINDS:
            raise option_error(settings, key, f"expected one of: {', '.join(FILE_KINDS)}")
        if not isinstance(mapping, Mapping):
            raise option_error(settings, key, f"expected a table of name = header, got {mapping!r}")
        columns[kind] = {}
        for name, header in mapping.items():
            if not isinstance(name, str) or not name.strip():
                raise option_error(settings, key, f"expected names as keys, got {name!r}")
            if not isinstance(header, str) or not header.strip():
                raise option_error(settings, f"{key}.{name}", f"expected a header, got {header!r}")
            columns[kind][name.strip()] = header.strip()
    return columns


def _types(settings: PluginSettings) -> dict[str, str]:
    raw: dict[Any, Any] = settings.get("types", dict, {})
    for name, type_name in raw.items():
        if type_name not in TRAIT_TYPES:
            allowed = ", ".join(sorted(TRAIT_TYPES))
            raise option_error(
                settings, f"types.{name}", f"expected one of {allowed}, got {type_name!r}"
            )
    return {str(name): str(type_name) for name, type_name in raw.items()}


def _zone(settings: PluginSettings) -> ZoneInfo | None:
    name = settings.get("timezone", str, "")
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise option_error(settings, "timezone", f"unknown IANA zone {name!r}") from None


def _delimiter(settings: PluginSettings) -> str:
    delimiter = settings.get("delimiter", str, ",")
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise option_error(
            settings,
            "delimiter",
            f"expected one character other than a quote or newline, got {delimiter!r}",
        )
    return delimiter


def _encoding(settings: PluginSettings) -> str:
    encoding = settings.get("encoding", str, "utf-8-sig")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise option_error(settings, "encoding", f"unknown encoding {encoding!r}") from None
    return encoding
