"""What a host may hand over as traits, consent and event properties: plain JSON data.

The store keeps these values as JSON on SQLite and on PostgreSQL, and the segment SQL reads
them there, so a value is refused up front, with its path, when either database would fail on
it later (a NUL, a lone surrogate), when JSON has no form for it (a datetime, a set, bytes, NaN),
or when it nests deeper than any profile needs (which would otherwise end in a RecursionError
far from the call that caused it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: How deep a value may nest: ``{"a": {"b": 1}}`` is 2 deep.
MAX_DEPTH = 32
#: The integers both databases' JSON functions compare exactly (64-bit signed).
MAX_INT = 2**63 - 1

__all__ = ["MAX_DEPTH", "json_problem", "text_problem"]


def text_problem(text: str, *, limit: int | None = None) -> str | None:
    """Why ``text`` cannot be stored, or ``None``: a NUL, a lone surrogate, over ``limit``."""
    if limit is not None and len(text) > limit:
        return f"is {len(text)} characters long; at most {limit} fit"
    if "\x00" in text:
        return "contains a NUL character (\\x00)"
    if text.isascii():
        return None  # constant time: ASCII text holds no surrogate
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"contains a lone surrogate ({text[exc.start]!r} at position {exc.start}), "
            "which is not valid Unicode text; decode the source bytes with errors='replace'"
        )
    return None


def json_problem(value: Mapping[str, Any], *, name: str) -> str | None:
    """Why ``value`` (a mapping named ``name``) is not plain JSON data, or ``None``.

    The answer names the first offending path, e.g. ``properties["plan"]["since"]: a datetime
    is not JSON data; pass its .isoformat() text``. Walks iteratively, so a value nested
    thousands deep is reported rather than overflowing the stack.
    """
    if isinstance(value, dict) and _flat_and_plain(value):
        return None
    stack: list[tuple[str, object, int]] = [(name, value, 1)]
    while stack:
        path, item, depth = stack.pop()
        if isinstance(item, Mapping | list | tuple):
            if depth > MAX_DEPTH:
                return f"{_shortened(path)}: nests more than {MAX_DEPTH} levels deep"
            if isinstance(item, Mapping):
                for key, child in item.items():
                    if not isinstance(key, str):
                        return f"{path}: key {key!r} is a {type(key).__name__}; keys are text"
                    if problem := text_problem(key):
                        return f"{path}: key {key!r} {problem}"
                    stack.append((f"{path}[{key!r}]", child, depth + 1))
            else:
                stack.extend((f"{path}[{i}]", child, depth + 1) for i, child in enumerate(item))
        elif (problem := _scalar_problem(item)) is not None:
            return f"{path}: {problem}"
    return None


def _flat_and_plain(value: Mapping[str, Any]) -> bool:
    """Whether ``value`` is one level of ASCII keys and plain scalars (most traits and
    properties are): checked in one pass, without the general walk and its paths."""
    for key, item in value.items():
        if type(key) is not str or not key.isascii() or "\x00" in key:
            return False
        kind = type(item)
        if kind is str:
            if not item.isascii() or "\x00" in item:
                return False
        elif kind is int:
            if not -MAX_INT - 1 <= item <= MAX_INT:
                return False
        elif kind is float:
            if not math.isfinite(item):
                return False
        elif item is not None and kind is not bool:
            return False
    return True


def _scalar_problem(item: object) -> str | None:
    if item is None or isinstance(item, bool):
        return None
    if isinstance(item, str):
        return text_problem(item)
    if isinstance(item, int):
        if -MAX_INT - 1 <= item <= MAX_INT:
            return None
        return f"a {item.bit_length()}-bit integer does not fit in 64 bits; pass it as text"
    if isinstance(item, float):
        return None if math.isfinite(item) else f"{item!r} is not a JSON number"
    kind = type(item).__name__
    hint = "; pass its .isoformat() text" if hasattr(item, "isoformat") else ""
    plain = "text, number, true/false, null, list or mapping"
    return f"a value of type {kind} is not JSON data ({plain}){hint}"


def _shortened(path: str) -> str:
    return path if len(path) <= 80 else f"{path[:40]}...{path[-30:]}"
