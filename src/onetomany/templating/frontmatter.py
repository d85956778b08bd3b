"""Split a template file into its TOML front matter and its MJML body.

A template may start with a ``+++`` line, TOML, and a second ``+++`` line::

    +++
    subject = "Welcome aboard, {{ contact.first_name }}"
    preheader = "Three steps to your first report"
    +++
    <mjml>...</mjml>

Every value is itself a Jinja template; this module only parses and checks the shape, and
remembers on which file line each key sits so that render errors can point at it.

The front matter is optional: a file that does not start with ``+++`` is all MJML (the
templates a team already has, MJML's gallery). Its subject and preheader then come from the
touch that sends it or from the MJML's own ``<mj-title>`` and ``<mj-preview>``
(:func:`mjml_head_fields`); rendering says which is missing when none gives the subject.
"""

from __future__ import annotations

import html
import re
import tomllib
from collections.abc import Mapping

import attrs

from onetomany.errors import TemplateError

__all__ = ["FIELDS", "FrontMatter", "HeadField", "mjml_head_fields", "split_front_matter"]

# The keys a template may set, in the order Rendered lists them (``title`` is the in-app
# title, the subject when absent). Unknown keys are refused so a
# typo such as ``reply-to`` fails loudly instead of silently dropping the header.
FIELDS = ("subject", "preheader", "from", "reply_to", "url", "title")
_DELIMITER = "+++"
# The MJML head elements that stand in for a front matter key the file does not set.
_HEAD_ELEMENTS = {"subject": "mj-title", "preheader": "mj-preview"}
_TOML_LINE = re.compile(r"at line (\d+)")


@attrs.frozen(kw_only=True)
class FrontMatter:
    """The parsed head of a template file.

    ``fields`` maps each key present to its (unrendered) template text and ``lines`` to the file
    line it is on; ``body`` is the MJML after the closing delimiter, which starts on file line
    ``body_line``.
    """

    fields: Mapping[str, str]
    lines: Mapping[str, int]
    body: str
    body_line: int


def split_front_matter(text: str, *, template: str) -> FrontMatter:
    """Parse ``text`` (the whole file, newlines already normalised to ``\\n``)."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != _DELIMITER:
        return FrontMatter(fields={}, lines={}, body=text, body_line=1)
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == _DELIMITER)
    except StopIteration:
        raise TemplateError(
            f"the front matter opened on line 1 is never closed by a {_DELIMITER!r} line",
            template=template,
            line=1,
        ) from None
    head = "\n".join(lines[1:end])
    try:
        data = tomllib.loads(head)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_LINE.search(str(exc))
        # TOML lines count from the line after the opening delimiter. "At end of document"
        # means the last line with content left something open.
        filled = [i + 1 for i in range(1, end) if lines[i].strip()]
        line = int(found.group(1)) + 1 if found else (filled[-1] if filled else end + 1)
        raise TemplateError(
            f"front matter is not valid TOML: {exc}", template=template, line=line
        ) from exc
    fields: dict[str, str] = {}
    for key, value in data.items():
        if key not in FIELDS:
            raise TemplateError(
                f"unknown front matter key {key!r}; allowed keys: {', '.join(FIELDS)}",
                template=template,
                line=_key_line(lines, end, key),
            )
        if not isinstance(value, str):
            raise TemplateError(
                f"front matter key {key!r} must be a string, not {type(value).__name__}",
                template=template,
                line=_key_line(lines, end, key),
            )
        fields[key] = value
    return FrontMatter(
        fields=fields,
        lines={key: _key_line(lines, end, key) or 1 for key in fields},
        body="\n".join(lines[end + 1 :]),
        body_line=end + 2,
    )


def _key_line(lines: list[str], end: int, key: str) -> int | None:
    # tomllib keeps no positions; a key is found again by its ``key =`` (or ``"key" =``) line.
    pattern = re.compile(rf"""^\s*(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')\s*=""")
    for index in range(1, end):
        if pattern.match(lines[index]):
            return index + 1
    return None


@attrs.frozen(kw_only=True)
class HeadField:
    """A front matter key's stand-in found in the MJML head: the element's text (entities
    decoded, whitespace collapsed; still a Jinja template) and the file line it starts on."""

    element: str
    text: str
    line: int


def mjml_head_fields(body: str, *, body_line: int) -> dict[str, HeadField]:
    """``subject`` from the body's ``<mj-title>`` and ``preheader`` from its ``<mj-preview>``,
    for those it has (the first of each, and only in the file itself, not in its includes)."""
    found: dict[str, HeadField] = {}
    for key, element in _HEAD_ELEMENTS.items():
        match = re.search(rf"<{element}(?:\s[^>]*)?>(.*?)</{element}\s*>", body, re.DOTALL)
        if match is None:
            continue
        text = " ".join(html.unescape(match.group(1)).split())
        if text:
            line = body_line + body.count("\n", 0, match.start(1))
            found[key] = HeadField(element=element, text=text, line=line)
    return found
