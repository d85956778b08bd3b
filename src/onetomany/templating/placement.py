"""Decide whether a template may be compiled by MJML once, with its Jinja tags still in it.

Compiling MJML once and rendering only Jinja per recipient is correct when the two steps
commute: ``jinja(mjml(source)) == mjml(jinja(source))``. That holds when every Jinja tag sits
where MJML copies text through untouched (inside ``<mj-text>``, ``<mj-button>`` and the other
"ending" elements, or inside attributes MJML passes through such as ``href``), and the tags come
out of MJML in the same order with the same control flow around them.

It does not hold for a control block between MJML tags even when MJML keeps the tag text:
``{% if %}`` around one of two ``<mj-column>`` still leaves both columns 50% wide, while
rendering Jinja first gives a single 100% column. So two checks run:

* :func:`placement_problem`, on the source, before MJML: is every tag in a pass-through place?
* :func:`same_tags`, after MJML: did the control tags survive in order, and does every
  expression still sit between the same control tags?

Either failing sends the template to the slower but always-correct "jinja-first" strategy.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping

__all__ = ["JINJA_TAG", "expand_includes", "placement_problem", "same_tags"]

JINJA_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)

# MJML elements whose content MJML copies through as raw HTML.
_ENDING = frozenset(
    {
        "mj-text", "mj-button", "mj-raw", "mj-table", "mj-title", "mj-preview",
        "mj-navbar-link", "mj-social-element", "mj-accordion-title", "mj-accordion-text",
    }
)  # fmt: skip
# Attributes MJML copies into the output without computing with them. Layout attributes
# (width, padding, font-family, which decides font imports, ...) are not here on purpose.
_PASS_THROUGH = frozenset(
    {
        "href", "src", "alt", "title", "rel", "target", "name", "color", "background-color",
        "container-background-color", "css-class",
    }
)  # fmt: skip
_SCAN = re.compile(
    r"(?P<jinja>\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\})"
    r"|(?P<comment><!--.*?-->)"
    r"|(?P<tag><(?P<close>/)?(?P<name>[A-Za-z][\w:.-]*)(?P<attrs>(?:[^>\"']|\"[^\"]*\"|'[^']*')*)>)",
    re.DOTALL,
)
_ATTRIBUTE = re.compile(r"""([^\s=/>"']+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>"']+))?""")
_INCLUDE = re.compile(
    r"""<mj-include\b(?P<attrs>(?:[^>"']|"[^"]*"|'[^']*')*)>(?:\s*</mj-include\s*>)?""",
    re.IGNORECASE,
)
# Block tags that need an end tag; ``set`` only in its block form (no ``=``).
_OPENERS = frozenset(
    {"if", "for", "macro", "call", "filter", "block", "with", "autoescape", "trans", "raw"}
)
_MAX_INCLUDE_DEPTH = 20


def placement_problem(source: str) -> str | None:
    """Why the Jinja tags in ``source`` (MJML, includes expanded) cannot go through MJML as
    text, or ``None`` when every one of them sits in a pass-through place."""
    ending: str | None = None  # the raw-content element we are inside, if any
    region: list[str] = []  # Jinja tags seen inside it
    placed = 0
    for match in _SCAN.finditer(source):
        text = match.group()
        if ending is not None:
            if match["close"] and match["name"].lower() == ending:
                if not _balanced(region):
                    return f"a control block is not closed inside the same <{ending}>"
                ending, region = None, []
            else:
                tags = JINJA_TAG.findall(text)
                region.extend(tags)
                placed += len(tags)
            continue
        if match["jinja"]:
            return f"{_short(text)} sits between MJML tags"
        if match["comment"]:
            if JINJA_TAG.search(text):
                return "a Jinja tag sits inside an MJML comment"
            continue
        problem, count = _attributes_problem(match["name"].lower(), match["attrs"])
        if problem:
            return problem
        placed += count
        if not match["close"] and not match["attrs"].rstrip().endswith("/"):
            name = match["name"].lower()
            ending = name if name in _ENDING else None
    if placed != len(JINJA_TAG.findall(source)):
        # Some tag hid where the scanner could not see it (e.g. a '>' inside a tag's attribute
        # list); not knowing where it sits, assume the worst.
        return "a Jinja tag sits where it cannot be placed"
    return None


def same_tags(source: str, compiled: str) -> bool:
    """Whether MJML kept the Jinja tags of ``source`` in ``compiled``.

    Control tags (``{% %}``, ``{# #}``) must come out identical and in the same order.
    Expressions may be duplicated or moved by MJML (``<mj-title>`` is also written into an
    ``aria-label``, ``<mj-preview>`` moves to the top of the body) and that is harmless, as long
    as each still sits between the same two control tags and none is lost or invented. A tag
    whose text MJML changed (say, escaped ``>`` to ``&gt;``) counts as lost.
    """
    return _shape(source) == _shape(compiled)


def expand_includes(source: str, files: Mapping[str, str], depth: int = 0) -> str:
    """``source`` with each ``<mj-include>`` replaced by the file MJML loaded for it.

    Only for the checks above: it reproduces where included Jinja tags end up, not MJML's exact
    splicing. HTML includes are wrapped in ``<mj-raw>`` (MJML copies them through), CSS ones in
    ``<mj-style>`` (checked like any other structure).
    """
    if depth > _MAX_INCLUDE_DEPTH:
        return source

    def splice(match: re.Match[str]) -> str:
        attributes = {
            name.lower(): _unquote(value) for name, value in _ATTRIBUTE.findall(match["attrs"])
        }
        content = files.get(attributes.get("path", ""))
        if content is None:
            return match.group()
        kind = attributes.get("type", "mjml").lower()
        if kind == "html":
            return f"<mj-raw>{content}</mj-raw>"
        if kind == "css":
            return f"<mj-style>{content}</mj-style>"
        return expand_includes(content, files, depth + 1)

    return _INCLUDE.sub(splice, source)


def _attributes_problem(element: str, attributes: str) -> tuple[str | None, int]:
    count = 0
    outside = attributes
    for name, value in _ATTRIBUTE.findall(attributes):
        tags = JINJA_TAG.findall(value)
        if not tags:
            continue
        if name.lower() not in _PASS_THROUGH:
            return f"<{element} {name}> holds Jinja but MJML computes with its value", 0
        if not _balanced(tags):
            return f"a control block is not closed inside <{element} {name}>", 0
        count += len(tags)
        outside = outside.replace(value, "", 1)
    if JINJA_TAG.search(outside):
        return f"a Jinja tag sits among the attributes of <{element}>", 0
    return None, count


def _balanced(tags: list[str]) -> bool:
    depth = 0
    for tag in tags:
        if not tag.startswith("{%"):
            continue
        words = tag[2:-2].strip("-+ \t\r\n").split()
        if not words:
            continue
        head = words[0]
        if head in _OPENERS or (head == "set" and "=" not in tag):
            depth += 1
        elif head.startswith("end"):
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _shape(text: str) -> tuple[list[str], list[frozenset[str]]]:
    controls: list[str] = []
    segments: list[set[str]] = [set()]
    for tag in JINJA_TAG.findall(text):
        key = tag[:2] + " ".join(tag[2:-2].strip("-+").split())
        if tag.startswith("{{"):
            segments[-1].add(key)
        else:
            controls.append(key)
            segments.append(set())
    return controls, [frozenset(segment) for segment in segments]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return html.unescape(value)


def _short(tag: str) -> str:
    return tag if len(tag) <= 40 else tag[:37] + "..."
