"""Typed plugin options: a channel states its options as an attrs class; the core reads them.

A channel plugin declares what its ``[channels.NAME]`` table may hold::

    @attrs.frozen(kw_only=True)
    class PostmarkOptions:
        server_token: str = secret(help="the server's API token")
        timeout: float = option(10.0, help="seconds to wait for each answer")

    class PostmarkChannel(Channel):
        Options = PostmarkOptions

and the core, when it builds the channel, checks every value against the declared type,
refuses unknown keys, fills in defaults, resolves relative paths against the program's
folder and reports every problem at once with the file and the key
(``program.toml: channels.email.port: expected an integer, got "abc"``). Fields made with
:func:`secret` are masked in the options' repr, in the settings' repr, in errors and in what
``onetomany plugins --options NAME`` shows.

Types understood: ``str``, ``int``, ``float`` (an integer is accepted), ``bool``, ``Path``,
``Literal["a", "b"]`` (matched regardless of case), ``tuple[str, ...]``, ``dict[str, str]``
and ``X | None`` of those (``None`` is only ever a default: TOML has no null). A class's own
``__attrs_post_init__`` or validators may raise :class:`~onetomany.errors.ConfigError` with
``key`` set to the field's name for rules that tie fields together; the core adds the file
and the channel's place in the program.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import attrs

from onetomany.errors import ConfigError, ConfigErrors

__all__ = [
    "MASK",
    "NoOptions",
    "OptionInfo",
    "describe_options",
    "email_address",
    "http_url",
    "option",
    "options_problem",
    "positive",
    "read_options",
    "secret",
    "secret_fields",
]

MASK = "********"
_SECRET = "onetomany.secret"  # noqa: S105 - a metadata key, not a password
_HELP = "onetomany.help"

T = TypeVar("T")


def _masked_repr(value: object) -> str:
    return repr(MASK) if value else repr(value)


def option(
    default: Any = attrs.NOTHING,
    *,
    help: str,
    factory: Any = None,
    validator: Any = None,
    converter: Any = None,
) -> Any:
    """An option field: ``default`` (leave it out for a required option) and a one-line
    ``help`` that ``onetomany plugins --options`` shows."""
    return attrs.field(
        default=attrs.Factory(factory) if factory is not None else default,
        validator=validator,
        converter=converter,
        metadata={_HELP: help, _SECRET: False},
    )


def secret(default: Any = attrs.NOTHING, *, help: str) -> Any:
    """A secret option (a password, a token): masked everywhere it could be printed."""
    return attrs.field(default=default, repr=_masked_repr, metadata={_HELP: help, _SECRET: True})


@attrs.frozen(kw_only=True)
class NoOptions:
    """The options of a channel that takes none."""


@attrs.frozen(kw_only=True)
class OptionInfo:
    """One option as ``onetomany plugins --options NAME`` lists it."""

    name: str
    type: str
    default: str | None  # None: required
    secret: bool
    help: str

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def secret_fields(cls: type) -> frozenset[str]:
    """The names of ``cls``'s secret options."""
    return frozenset(f.name for f in attrs.fields(cls) if f.metadata.get(_SECRET))


def options_problem(cls: object) -> str | None:
    """What is wrong with ``cls`` as an options class, or None when nothing is."""
    if not (isinstance(cls, type) and attrs.has(cls)):
        return f"its Options ({cls!r}) is not an attrs class"
    try:
        hints = typing.get_type_hints(cls)
    except Exception as exc:
        return f"its Options' annotations cannot be resolved: {exc}"
    for field in attrs.fields(cls):
        if field.name.startswith("_"):
            return f"option {field.name!r} starts with an underscore"
        if _describe(hints.get(field.name)) is None:
            return f"option {field.name!r} has a type options cannot hold: {hints.get(field.name)}"
    return None


def describe_options(cls: type) -> list[OptionInfo]:
    """Every option of ``cls``: its name, type, default, whether it is secret, and its help."""
    hints = typing.get_type_hints(cls)
    infos = []
    for field in attrs.fields(cls):
        is_secret = bool(field.metadata.get(_SECRET))
        if field.default is attrs.NOTHING:
            default = None
        elif isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            default = "(computed)"
        elif is_secret and field.default:
            default = MASK
        else:
            default = "(none)" if field.default is None else _shown(field.default)
        infos.append(
            OptionInfo(
                name=field.name,
                type=_describe(hints[field.name]) or "?",
                default=default,
                secret=is_secret,
                help=str(field.metadata.get(_HELP, "")),
            )
        )
    return infos


def read_options(
    cls: type[T],
    raw: Mapping[str, Any],
    *,
    where: str,
    file: str | None = None,
    base_dir: Path | None = None,
    reserved: frozenset[str] = frozenset(),
) -> T:
    """``raw`` read into a ``cls`` instance, every value checked against its declared type.

    :param where: the table the options come from (``channels.email``); every error's key
        starts with it.
    :param reserved: keys the core reads itself (``kind``), allowed and skipped here.
    :raises ConfigError: one problem; :class:`~onetomany.errors.ConfigErrors` for several.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in attrs.fields(cls)}  # type: ignore[arg-type]
    secrets = {name for name, f in fields.items() if f.metadata.get(_SECRET)}
    problems: list[ConfigError] = []

    def problem(key: str | None, reason: str) -> None:
        # A validator's message may quote what it was given: never a secret.
        for name in secrets:
            value = raw.get(name)
            if isinstance(value, str) and value:
                reason = reason.replace(value, MASK)
        problems.append(ConfigError(reason, file=file, key=f"{where}.{key}" if key else where))

    unknown = sorted(set(raw) - set(fields) - reserved)
    for key in unknown:
        known = ", ".join(sorted(set(fields) | reserved)) or "none"
        problem(key, f"unknown option (known: {known})")
    values: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in raw:
            if field.default is attrs.NOTHING:
                problem(name, "this option is required")
            continue
        try:
            values[name] = _coerce(hints[name], raw[name], name in secrets, base_dir)
        except _Refused as exc:
            problem(name, str(exc))
    if not problems:
        try:
            return cls(**values)
        except ConfigErrors as exc:
            for error in exc.errors:
                problem(error.key, error.reason)
        except ConfigError as exc:
            problem(exc.key, exc.reason)
        except (TypeError, ValueError) as exc:
            problem(None, f"{type(exc).__name__}: {exc}")
    raise problems[0] if len(problems) == 1 else ConfigErrors(problems)


class _Refused(Exception):
    """A value that does not fit its option's type; the message says why."""


_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _shown(value: object) -> str:
    """A value as the TOML file would write it."""
    if isinstance(value, Path):
        value = str(value)
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _optional_of(hint: Any) -> Any:
    """``X`` for ``X | None``; ``hint`` itself otherwise."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _describe(hint: Any) -> str | None:
    """A short name for an option type; None for a type options cannot hold."""
    inner = _optional_of(hint)
    origin, args = typing.get_origin(inner), typing.get_args(inner)
    if inner in (str, int, float, bool):
        return str(inner.__name__)
    if inner is Path:
        return "path"
    if origin is Literal and all(isinstance(a, str) for a in args):
        return " | ".join(json.dumps(a) for a in args)
    if origin is tuple and args[1:] == (Ellipsis,) and args[0] is str:
        return "list of strings"
    if origin in (dict, Mapping) and args == (str, str):
        return "table of strings"
    return None


def _coerce(hint: Any, value: Any, is_secret: bool, base_dir: Path | None) -> Any:
    inner = _optional_of(hint)
    origin, args = typing.get_origin(inner), typing.get_args(inner)
    got = MASK if is_secret else _shown(value)
    if inner is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if inner in (str, int, float, bool):
        if not isinstance(value, inner) or (inner is not bool and isinstance(value, bool)):
            raise _Refused(f"expected {_NAMES[inner]}, got {got}")
        return value
    if inner is Path:
        if not isinstance(value, str) or not value:
            raise _Refused(f"expected a path, got {got}")
        path = Path(value).expanduser()
        return path if path.is_absolute() or base_dir is None else base_dir / path
    if origin is Literal:
        if isinstance(value, str):
            for choice in args:
                if value.strip().lower() == choice.lower():
                    return choice
        choices = ", ".join(json.dumps(a) for a in args)
        raise _Refused(f"expected one of {choices}, got {got}")
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _Refused(f"expected a list of strings, got {got}")
        return tuple(value)
    if origin in (dict, Mapping):
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise _Refused(f"expected a table of strings, got {got}")
        return dict(value)
    raise _Refused(f"this option's type ({hint}) cannot be read")  # options_problem refuses it


# -- validators options often need (raise ConfigError naming the field) -----------------------


def positive(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    """A number of seconds (or anything) above 0."""
    if not value > 0:
        raise ConfigError(f"expected a number above 0, got {value}", key=attribute.name)


def email_address(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    """An email address, with or without a display name; empty passes (not set)."""
    if value and "@" not in parseaddr(value)[1]:
        raise ConfigError(f"{value!r} is not an email address", key=attribute.name)


def http_url(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    """An ``http://`` or ``https://`` URL with a host."""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(f"expected an http:// or https:// URL, got {value!r}", key=attribute.name)
