"""The tokenizer of the segment language, and the syntax error every stage reports with.

Hand-written on purpose: the language is small, and a hand-written scanner knows the exact
character position of every token, which is what a good error message needs.
"""

from __future__ import annotations

import enum
import math

import attrs

from onetomany.errors import ConfigError


class Kind(enum.Enum):
    NUMBER = "number"
    STRING = "string"
    NAME = "name"
    OP = "operator"
    END = "end of expression"


@attrs.frozen
class Token:
    kind: Kind
    text: str
    pos: int
    #: The decoded value of a NUMBER (int or float) or STRING token.
    value: int | float | str | None = None


# Longest first, so that "<=" is not read as "<" then "=".
OPERATORS = (
    "==",
    "!=",
    "<=",
    ">=",
    "<",
    ">",
    "+",
    "-",
    "*",
    "/",
    "(",
    ")",
    "[",
    "]",
    ",",
    ".",
    "=",
)
ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r"}


def syntax_error(
    text: str, pos: int, message: str, *, file: str | None = None, key: str | None = None
) -> ConfigError:
    """A ConfigError quoting the expression with a caret under character ``pos`` (0-based)."""
    # Only the line holding pos is quoted, so the caret stays aligned in multi-line texts.
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    line = text[start : end if end != -1 else len(text)]
    caret = " " * (pos - start) + "^"
    reason = f"segment expression, at position {pos}: {message}\n    {line}\n    {caret}"
    return ConfigError(reason, file=file, key=key)


def tokenize(text: str, *, file: str | None = None, key: str | None = None) -> list[Token]:
    """The tokens of ``text``, ending with an END token; raises ConfigError on a bad character."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch.isascii() and (ch.isalpha() or ch == "_"):
            j = i + 1
            while j < n and text[j].isascii() and (text[j].isalnum() or text[j] == "_"):
                j += 1
            tokens.append(Token(Kind.NAME, text[i:j], i))
            i = j
        elif _is_digit(ch):
            i = _number(text, i, tokens, file=file, key=key)
        elif ch in "\"'":
            i = _string(text, i, tokens, file=file, key=key)
        else:
            for op in OPERATORS:
                if text.startswith(op, i):
                    tokens.append(Token(Kind.OP, op, i))
                    i += len(op)
                    break
            else:
                raise syntax_error(text, i, f"unexpected character {ch!r}", file=file, key=key)
    tokens.append(Token(Kind.END, "", n))
    return tokens


def _is_digit(ch: str) -> bool:
    # str.isdigit() accepts other scripts' digits, which int() would then read differently.
    return "0" <= ch <= "9"


def _digits(text: str, i: int) -> int:
    while i < len(text) and _is_digit(text[i]):
        i += 1
    return i


def _number(
    text: str, start: int, tokens: list[Token], *, file: str | None, key: str | None
) -> int:
    i = _digits(text, start)
    is_float = False
    if i < len(text) and text[i] == "." and _is_digit(text[i + 1 : i + 2] or "x"):
        i = _digits(text, i + 1)
        is_float = True
    if i < len(text) and text[i] in "eE":
        j = i + 1
        if j < len(text) and text[j] in "+-":
            j += 1
        if _is_digit(text[j : j + 1] or "x"):
            i = _digits(text, j)
            is_float = True
    raw = text[start:i]
    value: int | float = float(raw) if is_float else int(raw)
    if isinstance(value, float) and math.isinf(value):
        raise syntax_error(text, start, f"number {raw} is too large", file=file, key=key)
    tokens.append(Token(Kind.NUMBER, raw, start, value))
    return i


def _string(
    text: str, start: int, tokens: list[Token], *, file: str | None, key: str | None
) -> int:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == quote:
            tokens.append(Token(Kind.STRING, text[start : i + 1], start, "".join(out)))
            return i + 1
        if ch == "\\":
            escaped = text[i + 1 : i + 2]
            if escaped not in ESCAPES:
                raise syntax_error(
                    text,
                    i,
                    "unknown escape in string; expected one of "
                    + " ".join("\\" + e for e in ESCAPES),
                    file=file,
                    key=key,
                )
            out.append(ESCAPES[escaped])
            i += 2
        else:
            out.append(ch)
            i += 1
    raise syntax_error(
        text, start, f"unterminated string; expected a closing {quote}", file=file, key=key
    )
