"""The sandboxed Jinja environment templates render in, and how its errors are reported.

Templates are written by program authors, not by the people who run the SDK, so they render in
Jinja's immutable sandbox: no underscore attributes, no mutating methods, no format-string
tricks. Two small additions close denial-of-service holes the stock sandbox leaves open:
``"x" * 10**9`` and ``10 ** 10 ** 8`` are refused before they allocate.

Every Jinja failure leaves this module as a :class:`~onetomany.errors.TemplateError` subclass that
names the template file and, when it can be known, the line.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import attrs
import jinja2
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from onetomany.errors import MissingVariableError, TemplateError, TemplateSecurityError

__all__ = [
    "BoundTemplate",
    "Locator",
    "Sandbox",
    "compile_template",
    "make_environment",
    "missing_variable_name",
]

# Finds where a failing name is used when Jinja's own line numbers are meaningless (the
# compiled-HTML template). Given the name (if the error names one), the error message and the
# render context, returns the file to blame and its line, if known.
Locator = Callable[[str | None, str, Mapping[str, Any]], tuple[str, int | None]]

_UNDEFINED_NAME = re.compile(r"^(?P<name>'.*'|\S+) is undefined$")
_UNDEFINED_MEMBER = re.compile(r" has no (?:attribute|element) (?P<name>.+)$")
_UNSAFE_ATTRIBUTE = re.compile(r"attribute '(?P<name>[^']+)'")
# Bits a ``**`` result may have before it is refused; plenty for any arithmetic in an email.
_MAX_POWER_BITS = 100_000


# What ``getattr`` finds on a plain dict: for any other name, Jinja's lookup ends in the item.
_DICT_ATTRIBUTES = frozenset(dir(dict))


class Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus size limits on ``*`` and ``**``, and a shortcut for
    ``contact.name`` on the plain dicts render contexts are made of."""

    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Jinja tries the attribute first and falls back to the item; on a dict that costs a
        # raised AttributeError per dotted name. The outcome is the same: a dict's only
        # attributes are its class's, and items are never sandboxed.
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)

    def __init__(self, *, max_bytes: int, **options: Any) -> None:
        super().__init__(**options)
        self.max_bytes = max_bytes

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            self._check_repeat(left, right)
            self._check_repeat(right, left)
        elif (
            operator == "**"
            and isinstance(left, int)
            and isinstance(right, int)
            and right > 0
            and abs(left) > 1
            and left.bit_length() * right > _MAX_POWER_BITS
        ):
            raise SecurityError(f"{left} ** {right} is too large to compute in a template")
        return super().call_binop(context, operator, left, right)

    def _check_repeat(self, sequence: Any, count: Any) -> None:
        if (
            isinstance(sequence, str | bytes | list | tuple)
            and isinstance(count, int)
            and len(sequence) * count > self.max_bytes
        ):
            raise SecurityError(f"repeating a sequence {count} times exceeds the size cap")


def make_environment(
    *,
    filters: Mapping[str, Callable[..., Any]],
    constants: Mapping[str, Any],
    max_bytes: int,
) -> tuple[Sandbox, Sandbox]:
    """Return the HTML environment (autoescape on) and the text environment (autoescape off).

    The text one is an overlay, so both share filters and globals.
    """
    for name, function in filters.items():
        if not callable(function):
            raise TypeError(f"template filter {name!r} is not callable: {function!r}")
    html = Sandbox(
        max_bytes=max_bytes,
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        # Templates are compiled once by us and kept; Jinja's own cache would only duplicate them.
        cache_size=0,
        auto_reload=False,
    )
    html.filters.update(filters)
    html.globals.update(constants)
    return html, html.overlay(autoescape=False)


@attrs.frozen(kw_only=True, eq=False)
class BoundTemplate:
    """A compiled Jinja template that knows which file (and line) it came from.

    ``origin`` is the file named in errors, ``first_line`` the file line of the template's first
    line. ``locator``, when set, replaces Jinja's line numbers: it is used for templates whose
    text is not the file's text (MJML output), to find the name that failed in the source.
    """

    template: jinja2.Template
    origin: str
    filename: str
    first_line: int = 1
    locator: Locator | None = None

    def render(self, context: Mapping[str, Any]) -> str:
        try:
            return self.template.render(context)
        except TemplateError:
            raise
        except Exception as exc:
            raise self._translate(exc, context) from exc

    def _translate(self, exc: Exception, context: Mapping[str, Any]) -> TemplateError:
        if isinstance(exc, SecurityError):
            found = _UNSAFE_ATTRIBUTE.search(str(exc))
            origin, line = self._where(exc, found.group("name") if found else None, context)
            return TemplateSecurityError(f"sandbox violation: {exc}", template=origin, line=line)
        if isinstance(exc, UndefinedError):
            name = missing_variable_name(str(exc))
            origin, line = self._where(exc, name, context)
            return MissingVariableError(name, template=origin, line=line)
        origin, line = self._where(exc, None, context)
        return TemplateError(f"{type(exc).__name__}: {exc}", template=origin, line=line)

    def _where(
        self, exc: Exception, name: str | None, context: Mapping[str, Any]
    ) -> tuple[str, int | None]:
        if self.locator is not None:
            return self.locator(name, str(exc), context)
        line = _template_line(exc.__traceback__, self.filename)
        return self.origin, None if line is None else self.first_line + line - 1


def compile_template(
    environment: jinja2.Environment,
    source: str,
    *,
    origin: str,
    filename: str | None = None,
    first_line: int = 1,
    locator: Locator | None = None,
) -> BoundTemplate:
    """Compile ``source``; a syntax error becomes a TemplateError at the right file line.

    ``filename`` must be unique per compiled text: it is how a runtime error's traceback frame is
    recognised as belonging to this template.
    """
    filename = filename or origin
    try:
        code = environment.compile(source, name=filename, filename=filename)
    except TemplateSyntaxError as exc:
        line = first_line + exc.lineno - 1 if exc.lineno else None
        raise TemplateError(
            f"template syntax error: {exc.message}", template=origin, line=line
        ) from exc
    # A plain dict, not the ChainMap make_globals returns: every render copies the globals into
    # a new context, and copying a ChainMap runs in Python (about half of a small render).
    template = environment.template_class.from_code(
        environment, code, dict(environment.make_globals(None))
    )
    return BoundTemplate(
        template=template,
        origin=origin,
        filename=filename,
        first_line=first_line,
        locator=locator,
    )


def missing_variable_name(message: str) -> str:
    """The name in one of Jinja's undefined messages.

    ``'foo' is undefined`` and ``'dict object' has no attribute 'foo'`` both give ``foo``;
    ``list object has no element 3`` gives ``3``. Anything else comes back whole.
    """
    found = _UNDEFINED_NAME.match(message) or _UNDEFINED_MEMBER.search(message)
    if found is None:
        return message
    name = found.group("name")
    try:
        return str(ast.literal_eval(name))
    except (ValueError, SyntaxError):
        return name


def _template_line(traceback: TracebackType | None, filename: str) -> int | None:
    # Jinja rewrites tracebacks so that template frames carry the template's filename and line;
    # the innermost such frame is where the failure happened.
    line = None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == filename:
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line
