"""The sandboxed Jinja environment templates render in, and how its errors are reported.

Templates are written by program authors, not by the people who run the SDK, so they render in
Jinja's immutable sandbox: no underscore attributes, no mutating methods, no format-string
tricks. On top of it, every template stays within its :class:`~onetomany.templating.limits.Limits`
(nesting when it compiles; sizes, steps and time as it renders): ``"x" * 10**9``,
``10 ** 10 ** 8``, ``'x'.center(10**9)`` or nested ``range(100000)`` loops are refused
instead of taking the process with them.

Every Jinja failure leaves this module as a :class:`~onetomany.errors.TemplateError` subclass that
names the template file and, when it can be known, the line.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from itertools import islice
from types import TracebackType
from typing import Any

import attrs
import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import (
    ImmutableSandboxedEnvironment,
    SandboxedEscapeFormatter,
    SandboxedFormatter,
)
from markupsafe import Markup

from onetomany.errors import MissingVariableError, TemplateError, TemplateSecurityError
from onetomany.templating.limits import (
    CURRENT,
    Budget,
    BudgetError,
    LimitError,
    Limits,
    check_call,
    check_percent_format,
    check_size,
    check_spec,
    check_tree,
    guarded_filters,
    guarded_globals,
    nesting_problem,
    weight,
)

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


# Set in the generated module of a template whose output can grow with the data (see _Template).
_GROWS = "otm_output_grows"
# Output chunks counted at a time (see Sandbox.chunks): at most this many times the size cap
# is held before a runaway output is refused.
_BATCH = 32

# What ``getattr`` finds on a plain dict: for any other name, Jinja's lookup ends in the item.
_DICT_ATTRIBUTES = frozenset(dir(dict))


class OverLimitError(TemplateSyntaxError):
    """A template that goes over its limits whatever it renders for (found as it compiles)."""


class _RenderContext(Context):
    """A render's context: it carries the render's :class:`~onetomany.templating.limits.Budget`
    (the one the sandbox set around the render, shared with the contexts Jinja derives)."""

    _budget: Budget | None = None

    @property
    def budget(self) -> Budget:
        budget = self._budget
        if budget is None:
            budget = CURRENT.get() or Budget(self.environment.limits)  # type: ignore[attr-defined]
            self._budget = budget
        return budget

    def derived(self, locals: dict[str, Any] | None = None) -> Context:
        context = super().derived(locals)
        context._budget = self.budget  # type: ignore[attr-defined]
        return context


class _CodeGenerator(CodeGenerator):
    """Jinja's code generator, with every ``~`` result checked against the size cap."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked_concat(")
        super().visit_Concat(node, frame)
        self.write(")")


class _Template(jinja2.Template):
    """A template that knows whether its output can grow with the data: only then (loops,
    macros) is its output counted against the size cap as it is produced. Without them the
    output is at most a few values, each within the cap, and the whole is checked after."""

    grows: bool = True

    @classmethod
    def _from_namespace(
        cls,
        environment: jinja2.Environment,
        namespace: MutableMapping[str, Any],
        globals: MutableMapping[str, Any],
    ) -> jinja2.Template:
        template = super()._from_namespace(environment, namespace, globals)
        template.grows = bool(namespace.get(_GROWS, False))  # type: ignore[attr-defined]
        return template

    def render(self, *args: Any, **kwargs: Any) -> str:
        token = CURRENT.set(Budget(self.environment.limits))  # type: ignore[attr-defined]
        try:
            if self.grows:
                return super().render(*args, **kwargs)
            context = self.new_context(dict(*args, **kwargs))
            try:
                return "".join(self.root_render_func(context))
            except Exception:
                self.environment.handle_exception()
            raise AssertionError("unreachable: handle_exception raises")  # pragma: no cover
        finally:
            CURRENT.reset(token)


class _Formatter(SandboxedFormatter):
    """``str.format`` in the sandbox, refusing widths and precisions over the size cap."""

    def __init__(self, env: jinja2.Environment, cap: int, **kwargs: Any) -> None:
        self.cap = cap
        super().__init__(env, **kwargs)

    def format_field(self, value: Any, format_spec: str) -> Any:
        check_spec(format_spec, self.cap)
        return super().format_field(value, format_spec)


class _EscapeFormatter(_Formatter, SandboxedEscapeFormatter):
    pass


class Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, within :class:`~onetomany.templating.limits.Limits`, and a
    shortcut for ``contact.name`` on the plain dicts render contexts are made of."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    context_class = _RenderContext
    code_generator_class = _CodeGenerator
    template_class = _Template

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

    def __init__(self, *, limits: Limits, **options: Any) -> None:
        super().__init__(**options)
        self.limits = limits
        self.max_bytes = limits.max_bytes
        self.filters.update(guarded_filters(limits.max_bytes))
        self.globals.update(guarded_globals(limits.max_bytes))

    # -- compiling: nesting is checked before Jinja's recursive parser and compiler see it ----

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        problem = nesting_problem(self._tokenize(source, name, filename))
        if problem is not None:
            raise OverLimitError(problem[0], problem[1], name, filename)
        return super()._parse(source, name, filename)

    def _generate(
        self,
        source: nodes.Template,
        name: str | None,
        filename: str | None,
        defer_init: bool = False,
    ) -> str:
        problem = check_tree(
            source, eval_ctx=EvalContext(self, name), max_steps=self.limits.max_steps
        )
        if problem is not None:
            raise OverLimitError(problem[0], problem[1], name, filename)
        code = super()._generate(source, name, filename, defer_init)
        if any(source.find_all((nodes.For, nodes.Macro, nodes.CallBlock))):
            code += f"\n{_GROWS} = True\n"  # read by _Template
        return code

    # -- rendering: sizes, steps and time ------------------------------------------------------

    def call(
        __self,
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        budget: Budget = __context.budget  # type: ignore[attr-defined]
        budget.spend()
        if isinstance(__obj, LoopContext) and args:  # a recursive loop's loop(children)
            args = (budget.counted(args[0]), *args[1:])
        args = tuple(check_call(__obj, list(args), kwargs, __self.max_bytes))
        result = super().call(__context, __obj, *args, **kwargs)
        return check_size(result, __self.max_bytes, "the result of a call")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            self._check_repeat(left, right)
            self._check_repeat(right, left)
            if isinstance(left, int) and isinstance(right, int):
                self._check_bits(left.bit_length() + right.bit_length(), left, "*", right)
            else:
                result = super().call_binop(context, operator, left, right)
                return check_size(result, self.max_bytes, "a repeated sequence")
        elif (
            operator == "**"
            and isinstance(left, int)
            and isinstance(right, int)
            and right > 0
            and abs(left) > 1
        ):
            self._check_bits(left.bit_length() * right, left, "**", right)
        elif operator == "+":
            sized = (str, bytes, list, tuple)
            if (
                isinstance(left, sized)
                and isinstance(right, sized)
                and len(left) + len(right) > self.max_bytes
            ):
                raise LimitError(
                    f"adding a {len(left)}- and a {len(right)}-long value exceeds the "
                    f"size cap of {self.max_bytes}"
                )
            result = super().call_binop(context, operator, left, right)
            return check_size(result, self.max_bytes, "a sum")
        elif operator == "%" and isinstance(left, str):
            check_percent_format(left, self.max_bytes)
            return check_size(
                super().call_binop(context, operator, left, right), self.max_bytes, "% result"
            )
        return super().call_binop(context, operator, left, right)

    def _check_bits(self, bits: int, left: int, operator: str, right: int) -> None:
        if bits > _MAX_POWER_BITS:
            # Not the numbers themselves: printing a huge int is itself refused by Python.
            raise LimitError(
                f"a {left.bit_length()}-bit number {operator} a {right.bit_length()}-bit number "
                f"is too large to compute in a template (over {_MAX_POWER_BITS} bits)"
            )

    def _check_repeat(self, sequence: Any, count: Any) -> None:
        if (
            isinstance(sequence, str | bytes | list | tuple)
            and isinstance(count, int)
            and max(weight(sequence, self.max_bytes), 1) * count > self.max_bytes
        ):
            raise LimitError(
                f"repeating a sequence {count} times exceeds the size cap of {self.max_bytes}"
            )

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # Jinja's own wrapper, with a formatter that checks every field's width and precision.
        if getattr(value, "__name__", None) not in ("format", "format_map") or not isinstance(
            getattr(value, "__self__", None), str
        ):
            return None
        if super().wrap_str_format(value) is None:
            return None
        template: str = value.__self__
        formatter = (
            _EscapeFormatter(self, self.max_bytes, escape=template.escape)
            if isinstance(template, Markup)
            else _Formatter(self, self.max_bytes)
        )
        is_format_map = value.__name__ == "format_map"
        cap = self.max_bytes

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                kwargs, args = args[0], ()
            result = type(template)(formatter.vformat(template, args, kwargs))
            return check_size(result, cap, "format() result")  # type: ignore[no-any-return]

        return wrapper

    def checked_concat(self, value: str) -> str:
        """``value`` (a ``~`` result) unless it is over the size cap."""
        return check_size(value, self.max_bytes, "a string joined with ~")  # type: ignore[no-any-return]

    def chunks(self, output: Iterable[str]) -> list[str]:
        """A render's output chunks, refused once they add up to more than the cap. Counted by
        batches: per chunk, Python would cost a fifth of a small render."""
        cap = self.max_bytes
        chunks = iter(output)
        parts = list(islice(chunks, _BATCH))
        size = sum(map(len, parts))
        while size <= cap:
            batch = list(islice(chunks, _BATCH))
            if not batch:
                return parts
            size += sum(map(len, batch))
            parts += batch
        raise LimitError(f"the rendered output is over the {cap}-byte cap")

    def output(self, template: jinja2.Template, context: Context) -> list[str]:
        """The output chunks of ``template`` rendered in ``context``, checked by
        :meth:`chunks` when the template's output can grow with the data."""
        token = CURRENT.set(Budget(self.limits))
        try:
            chunks = template.root_render_func(context)
            return self.chunks(chunks) if getattr(template, "grows", True) else list(chunks)
        finally:
            CURRENT.reset(token)

    def concat(self, output: Iterable[str]) -> str:
        return "".join(self.chunks(output))


def make_environment(
    *,
    filters: Mapping[str, Callable[..., Any]],
    constants: Mapping[str, Any],
    limits: Limits,
) -> tuple[Sandbox, Sandbox]:
    """Return the HTML environment (autoescape on) and the text environment (autoescape off).

    The text one is an overlay, so both share filters and globals.
    """
    for name, function in filters.items():
        if not callable(function):
            raise TypeError(f"template filter {name!r} is not callable: {function!r}")
    html = Sandbox(
        limits=limits,
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
        if isinstance(exc, BudgetError):
            # No one expression is to blame, so the locator (which evaluates them) is not run.
            line = None if self.locator else _template_line(exc.__traceback__, self.filename)
            line = None if line is None else self.first_line + line - 1
            return TemplateSecurityError(
                f"over a template limit: {exc}", template=self.origin, line=line
            )
        if isinstance(exc, LimitError):
            origin, line = self._where(exc, None, context)
            message = f"over a template limit: {exc}"
            return TemplateSecurityError(message, template=origin, line=line)
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
    except OverLimitError as exc:
        raise TemplateSecurityError(
            f"over a template limit: {exc.message}",
            template=origin,
            line=first_line + exc.lineno - 1,
        ) from exc
    except TemplateSyntaxError as exc:
        line = first_line + exc.lineno - 1 if exc.lineno else None
        raise TemplateError(
            f"template syntax error: {exc.message}", template=origin, line=line
        ) from exc
    except Exception as exc:  # RecursionError, MemoryError, Python refusing the generated code
        raise TemplateError(
            f"cannot compile: {type(exc).__name__}: {exc}", template=origin
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
