"""What one template may cost: checked once when it compiles, and again as each render runs.

Templates come from program authors, and a render runs inside the dispatcher, so a template
must never be able to take the process with it: no compile that recurses until Python gives
up, no render that runs for minutes or allocates gigabytes. :class:`Limits` holds the budgets;
the :class:`~onetomany.templating.environment.Sandbox` enforces them:

* **Nesting**, before Jinja's recursive parser sees the source: blocks (``if``, ``for``...)
  plus brackets plus unary operators and inline ``if`` at any point, at most
  :data:`MAX_NESTING`; ``for`` loops inside each other, at most :data:`MAX_LOOP_NESTING`;
  and the parsed tree at most :data:`MAX_TREE_DEPTH` deep (``a + b + c ...`` is a deep tree).
* **Size**: every width or precision in a format (``%``, ``str.format``, ``|format``), every
  width of ``center``/``ljust``/``rjust``/``zfill``/``expandtabs`` and of the ``center``,
  ``indent`` and ``wordwrap`` filters, and every string a template builds (``~``, ``+``, ``*``,
  ``%``, ``join``, ``replace``...) is refused when it would pass ``max_bytes``, the cap on
  the rendered HTML: before it is allocated wherever its size is known in advance.
* **Work**: each loop iteration and each call costs one step; a render may take ``max_steps``
  of them, run for ``max_seconds`` and build :data:`BUILT_FACTOR` times ``max_bytes`` in
  strings and lists all told (:class:`Budget`).

Constant arguments are checked at compile time, so ``{{ 'x'.center(999999999) }}`` or two
nested ``range(100000)`` loops are refused when the template loads (and by ``onetomany
validate``), naming the file and line. Jinja folds constant filter calls while compiling; the
filters named here are the guarded ones, so folding cannot run an unbounded operation either.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

import attrs
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import (
    do_batch,
    do_center,
    do_forceescape,
    do_format,
    do_indent,
    do_join,
    do_replace,
    do_slice,
    do_tojson,
    do_wordwrap,
    make_attrgetter,
)
from jinja2.lexer import (
    TOKEN_ASSIGN,
    TOKEN_BLOCK_BEGIN,
    TOKEN_BLOCK_END,
    TOKEN_LBRACE,
    TOKEN_LBRACKET,
    TOKEN_LPAREN,
    TOKEN_NAME,
    TOKEN_RBRACE,
    TOKEN_RBRACKET,
    TOKEN_RPAREN,
    TOKEN_VARIABLE_BEGIN,
    TOKEN_VARIABLE_END,
    Token,
)
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.utils import generate_lorem_ipsum, pass_context, pass_environment, pass_eval_context

__all__ = [
    "BUILT_FACTOR",
    "CURRENT",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_SECONDS",
    "DEFAULT_MAX_STEPS",
    "LOOP_FILTER",
    "MAX_LOOP_NESTING",
    "MAX_NESTING",
    "MAX_TREE_DEPTH",
    "Budget",
    "BudgetError",
    "LimitError",
    "Limits",
    "check_call",
    "check_percent_format",
    "check_spec",
    "check_tree",
    "guarded_filters",
    "guarded_globals",
    "nesting_problem",
    "weight",
]

# Blocks, brackets and unary operators open at any point of a template. Jinja's parser takes
# about 14 Python frames per bracket and 4 per block, so this stays far from the recursion limit.
MAX_NESTING = 30
# ``for`` loops inside each other (Python refuses more than 20 nested blocks in generated code).
MAX_LOOP_NESTING = 10
# Depth of the parsed tree (compiling it recurses about 3 frames per level).
MAX_TREE_DEPTH = 100
# The defaults of :class:`Limits`.
DEFAULT_MAX_BYTES = 512 * 1024
DEFAULT_MAX_STEPS = 1_000_000
DEFAULT_MAX_SECONDS = 2.0
# How many times ``max_bytes`` one render may build in strings and lists, all told.
BUILT_FACTOR = 16
# The filter every ``for`` loop's iterable goes through, to count its iterations. The space
# makes it a name no template can write.
LOOP_FILTER = "otm loop"

_OPENING_BLOCKS = frozenset(
    {"if", "for", "macro", "call", "filter", "with", "block", "autoescape", "raw", "trans"}
)
_UNARY = frozenset({"sub", "add"})
# Tokens after which ``-`` and ``+`` are binary.
_OPERANDS = frozenset({"name", "integer", "float", "string", "rparen", "rbracket", "rbrace"})
_KEYWORDS = frozenset({"not", "and", "or", "in", "is", "if", "else"})
# A %-conversion: mapping key, flags, width, precision, length modifier, type.
_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)?", re.DOTALL)
_NUMBER = re.compile(r"\d+")


class LimitError(SecurityError):
    """A template went over one of its :class:`Limits` (a sandbox violation)."""


class BudgetError(LimitError):
    """A render ran out of steps or time: no single expression is to blame."""


@attrs.frozen(kw_only=True)
class Limits:
    """The budgets of one template render.

    ``max_bytes`` caps the rendered HTML and text, and every width, precision and string built
    on the way; ``max_steps`` is how many loop iterations and calls one render may make;
    ``max_seconds`` how long it may run.
    """

    max_bytes: int = DEFAULT_MAX_BYTES
    max_steps: int = DEFAULT_MAX_STEPS
    max_seconds: float = DEFAULT_MAX_SECONDS

    def __attrs_post_init__(self) -> None:
        for name in ("max_bytes", "max_steps", "max_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)!r}")


# -- compile time ------------------------------------------------------------------------------


def nesting_problem(tokens: Iterable[Token]) -> tuple[str, int] | None:
    """The first place ``tokens`` (a template's, from Jinja's lexer) nest deeper than the
    limits allow, as (problem, line); ``None`` if they never do.

    Counted before parsing, because Jinja's parser is what recurses."""
    blocks: list[str] = []
    brackets = 0
    unary = 0  # unary operators and inline ifs in the current tag, counted as nesting
    first_name = False  # the next token is a block tag's name
    previous = ""  # the previous token's type: a - or + after an operand is not unary
    block_set = False  # in a {% set %} tag with no "=" so far
    for token in tokens:
        kind = token.type
        if kind == TOKEN_BLOCK_BEGIN:
            first_name = True
            previous = kind
            continue
        if kind in (TOKEN_BLOCK_END, TOKEN_VARIABLE_END, TOKEN_VARIABLE_BEGIN):
            brackets = unary = 0
            if block_set:  # {% set x %}...{% endset %}: a block, unlike {% set x = 1 %}
                blocks.append("set")
                block_set = False
        elif kind == TOKEN_ASSIGN:
            block_set = False
        elif first_name and kind == TOKEN_NAME:
            name = token.value
            block_set = name == "set"
            if name in _OPENING_BLOCKS:
                blocks.append(name)
                if blocks.count("for") > MAX_LOOP_NESTING:
                    return f"loops nested more than {MAX_LOOP_NESTING} deep", token.lineno
            elif name.startswith("end") and blocks:
                blocks.pop()
        elif kind in (TOKEN_LPAREN, TOKEN_LBRACKET, TOKEN_LBRACE):
            brackets += 1
        elif kind in (TOKEN_RPAREN, TOKEN_RBRACKET, TOKEN_RBRACE):
            brackets = max(brackets - 1, 0)
        elif (kind in _UNARY and previous not in _OPERANDS) or (
            kind == TOKEN_NAME and token.value in ("not", "if")
        ):
            unary += 1
        first_name = False
        previous = kind if kind != TOKEN_NAME or token.value not in _KEYWORDS else "keyword"
        if len(blocks) + brackets + unary > MAX_NESTING:
            return (
                f"nested more than {MAX_NESTING} deep (blocks, brackets and operators)",
                token.lineno,
            )
    return None


def check_tree(
    tree: nodes.Template, *, eval_ctx: EvalContext, max_steps: int
) -> tuple[str, int] | None:
    """Check and prepare a parsed template; returns the first problem as (problem, line).

    Refuses a tree deeper than :data:`MAX_TREE_DEPTH`, constant arguments over a limit (the
    guarded filters, string methods, nested ``range`` loops over ``max_steps``), and routes
    every ``for`` loop's iterable through :data:`LOOP_FILTER`. Iterative: the tree may be
    deep."""
    loops: list[nodes.For] = []
    stack: list[tuple[nodes.Node, int, int]] = [(tree, 0, 1)]
    while stack:
        node, depth, iterations = stack.pop()
        if depth > MAX_TREE_DEPTH:
            return f"expression or blocks nested more than {MAX_TREE_DEPTH} deep", node.lineno
        problem = _constant_problem(node, eval_ctx)
        if problem is not None:
            return problem, node.lineno
        if isinstance(node, nodes.For):
            loops.append(node)
            size = _constant_range(node.iter)  # type: ignore[arg-type]
            if size is not None:
                inner = iterations * size
                if inner > max_steps:
                    return (
                        f"nested loops run {inner} times, over the budget of {max_steps} "
                        "steps per render",
                        node.lineno,
                    )
                for child in node.iter_child_nodes(exclude=("iter",)):
                    stack.append((child, depth + 1, inner))
                stack.append((node.iter, depth + 1, iterations))
                continue
        for child in node.iter_child_nodes():
            stack.append((child, depth + 1, iterations))
    for loop in loops:
        if isinstance(loop.iter, nodes.Filter) and loop.iter.name == LOOP_FILTER:
            continue  # this tree was compiled before
        loop.iter = nodes.Filter(loop.iter, LOOP_FILTER, [], [], None, None, lineno=loop.lineno)
    return None


def _constant_range(node: nodes.Expr) -> int | None:
    if (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.Name)
        and node.node.name == "range"
        and not node.kwargs
        and node.dyn_args is None
        and node.dyn_kwargs is None
        and all(isinstance(arg, nodes.Const) and isinstance(arg.value, int) for arg in node.args)
        and 1 <= len(node.args) <= 3
    ):
        try:
            return len(range(*(arg.value for arg in node.args)))  # type: ignore[attr-defined]
        except (ValueError, OverflowError):
            return None
    return None


def _constant_problem(node: nodes.Node, eval_ctx: EvalContext) -> str | None:
    """A limit that a constant filter or method call goes over, found without running it."""
    if isinstance(node, nodes.Filter) and node.name in _GUARDED and node.node is not None:
        try:
            node.as_const(eval_ctx)
        except nodes.Impossible as exc:
            if isinstance(exc.__cause__, LimitError):
                return str(exc.__cause__)
        return None
    if isinstance(node, nodes.Mod):
        try:
            left = node.left.as_const(eval_ctx)
        except nodes.Impossible:
            return None
        if isinstance(left, str):
            try:
                check_percent_format(left, _cap(eval_ctx))
            except LimitError as exc:
                return str(exc)
        return None
    if (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.Getattr)
        and node.dyn_args is None
        and node.dyn_kwargs is None
    ):
        try:
            target = node.node.node.as_const(eval_ctx)
            args = [arg.as_const(eval_ctx) for arg in node.args]
            kwargs = {pair.key: pair.value.as_const(eval_ctx) for pair in node.kwargs}
        except nodes.Impossible:
            return None
        if not isinstance(target, str | bytes | int):
            return None
        method = getattr(target, node.node.attr, None)
        if method is None:
            return None
        try:
            if node.node.attr in ("format", "format_map") and isinstance(target, str):
                _check_format_call(target, args, kwargs, eval_ctx.environment)
            else:
                check_call(method, args, kwargs, _cap(eval_ctx))
        except LimitError as exc:
            return str(exc)
        except Exception:
            return None
    return None


def _check_format_call(
    target: str, args: list[Any], kwargs: Mapping[str, Any], environment: Any
) -> None:
    wrapped = environment.wrap_str_format(target.format)
    if wrapped is not None:
        wrapped(*args, **kwargs)


def _cap(eval_ctx: EvalContext) -> int:
    return int(getattr(eval_ctx.environment, "max_bytes", DEFAULT_MAX_BYTES))


# -- render time: sizes ------------------------------------------------------------------------


def weight(value: Any, limit: int) -> int:
    """About how many characters ``value`` holds (a string's length; a container's items and
    what they hold, each counted for every time it appears); counting stops past ``limit``."""
    if type(value) is str:
        return len(value)
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item)
            stack.extend(item)
        elif isinstance(item, dict):
            total += len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
    return total


def check_size(value: Any, cap: int, what: str) -> Any:
    """``value``, unless it holds more than ``cap`` characters (see :func:`weight`); what it
    holds is charged to the current render's :class:`Budget`."""
    size = weight(value, cap)
    if size > cap:
        raise LimitError(f"{what} would hold over {cap} characters, the limit")
    if size:
        budget = CURRENT.get()
        if budget is not None:
            budget.charge(size)
    return value


def _width(value: Any, cap: int, what: str) -> None:
    if isinstance(value, int) and value > cap:
        raise LimitError(f"{what} is {value}, over the limit of {cap}")


def check_spec(spec: str, cap: int) -> None:
    """Refuse a ``str.format`` spec (``>999999``, ``.500000f``) with a number over ``cap``."""
    for number in _NUMBER.findall(spec):
        _width(int(number), cap, f"a width or precision in the format spec {spec!r}")


def check_percent_format(fmt: str, cap: int) -> None:
    """Refuse a ``%``-format with a width or precision over ``cap``, or a ``*`` one."""
    if "%" not in fmt:
        return
    for found in _PERCENT.finditer(fmt):
        width, precision = found.group(1), found.group(2)
        if width == "*" or precision == "*":
            raise LimitError(f"a '*' width or precision in {found.group()!r} is not allowed")
        for number in (width, precision):
            if number:
                _width(int(number), cap, f"the width or precision of {found.group()!r}")


def _replaced_size(text: str | bytes, old: Any, new: Any, count: Any) -> int:
    if not isinstance(old, str | bytes) or not isinstance(new, str | bytes):
        return len(text)
    found = len(text) + 1 if not old else text.count(old)  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def _joined_size(separator: str | bytes, items: list[Any]) -> int:
    size = len(separator) * max(len(items) - 1, 0)
    for item in items:
        size += len(item) if isinstance(item, str | bytes) else len(str(item))
    return size


def check_call(function: Any, args: list[Any], kwargs: Mapping[str, Any], cap: int) -> list[Any]:
    """Refuse a call to a ``str``/``bytes``/``int`` method whose result would pass ``cap``;
    returns the arguments to call it with (``join`` gets its items as a list)."""
    target = getattr(function, "__self__", None)
    name = getattr(function, "__name__", "")
    if isinstance(target, str | bytes):
        if name in ("center", "ljust", "rjust", "zfill") and args:
            _width(args[0], cap, f"{name}() width")
        elif name == "expandtabs":
            size = args[0] if args else kwargs.get("tabsize", 8)
            if isinstance(size, int):
                tabs = target.count("\t" if isinstance(target, str) else b"\t")  # type: ignore[arg-type]
                _width(len(target) + tabs * size, cap, "expandtabs() result size")
        elif name == "replace" and len(args) >= 2:
            count = args[2] if len(args) > 2 else kwargs.get("count", -1)
            _width(_replaced_size(target, args[0], args[1], count), cap, "replace() result size")
        elif name == "join" and len(args) == 1:
            items = list(args[0])
            _width(_joined_size(target, items), cap, "join() result size")
            return [items]
        elif name == "translate" and args and isinstance(args[0], Mapping):
            longest = max(
                (len(v) for v in args[0].values() if isinstance(v, str | bytes)), default=1
            )
            _width(len(target) * max(longest, 1), cap, "translate() result size")
    elif isinstance(target, int) and name == "to_bytes":
        _width(args[0] if args else kwargs.get("length", 1), cap, "to_bytes() length")
    return args


# -- render time: work -------------------------------------------------------------------------


@pass_context
def _counted(context: Context, iterable: Any) -> Iterator[Any]:
    budget: Budget | None = getattr(context, "budget", None)
    if budget is None:
        return iter(iterable)
    return budget.counted(iterable)


# -- guarded filters ---------------------------------------------------------------------------


def guarded_filters(cap: int) -> dict[str, Callable[..., Any]]:
    """Jinja's filters that can build something large, refusing to go over ``cap`` (plus the
    loop counter :data:`LOOP_FILTER`)."""

    def format_(value: Any, *args: Any, **kwargs: Any) -> str:
        check_percent_format(str(value), cap)
        return check_size(do_format(value, *args, **kwargs), cap, "|format result")  # type: ignore[no-any-return]

    def center(value: Any, width: int = 80) -> str:
        _width(width, cap, "|center width")
        return check_size(do_center(value, width), cap, "|center result")  # type: ignore[no-any-return]

    def indent(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
        text = str(s)
        step = len(width) if isinstance(width, str) else width
        if isinstance(step, int):
            _width(len(text) + (text.count("\n") + 1) * step, cap, "|indent result size")
        return check_size(do_indent(s, width, first, blank), cap, "|indent result")  # type: ignore[no-any-return]

    @pass_environment
    def wordwrap(
        environment: Any,
        s: Any,
        width: int = 79,
        break_long_words: bool = True,
        wrapstring: str | None = None,
        break_on_hyphens: bool = True,
    ) -> str:
        _width(width, cap, "|wordwrap width")
        wrap = wrapstring if wrapstring is not None else environment.newline_sequence
        if len(wrap) > 1:
            _width(len(str(s)) * (len(wrap) + 1), cap, "|wordwrap result size")
        result = do_wordwrap(environment, s, width, break_long_words, wrapstring, break_on_hyphens)
        return check_size(result, cap, "|wordwrap result")  # type: ignore[no-any-return]

    @pass_eval_context
    def join(eval_ctx: EvalContext, value: Any, d: str = "", attribute: Any = None) -> str:
        items = list(value)
        if attribute is not None:
            items = list(map(make_attrgetter(eval_ctx.environment, attribute), items))
        _width(_joined_size(str(d), items), cap, "|join result size")
        joined: str = check_size(do_join(eval_ctx, items, d), cap, "|join result")
        return joined

    @pass_eval_context
    def replace(eval_ctx: EvalContext, s: Any, old: Any, new: Any, count: Any = None) -> str:
        text = str(s)
        _width(
            _replaced_size(text, str(old), str(new), -1 if count is None else count),
            cap,
            "|replace result size",
        )
        return check_size(do_replace(eval_ctx, s, old, new, count), cap, "|replace result")  # type: ignore[no-any-return]

    def batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
        if fill_with is not None and isinstance(linecount, int):
            _width(linecount * max(weight(fill_with, cap), 1), cap, "|batch filling")
        return do_batch(value, linecount, fill_with)

    def slice_(value: Any, slices: int, fill_with: Any = None) -> Any:
        _width(slices, cap, "|slice count")
        if fill_with is not None and isinstance(slices, int):
            _width(slices * weight(fill_with, cap), cap, "|slice filling")
        return do_slice(value, slices, fill_with)

    @pass_eval_context
    def tojson(eval_ctx: EvalContext, value: Any, indent: int | None = None) -> Any:
        _width(indent, 64, "|tojson indent")
        return check_size(do_tojson(eval_ctx, value, indent), cap, "|tojson result")

    def forceescape(value: Any) -> Any:
        return check_size(do_forceescape(value), cap, "|forceescape result")

    return {
        "format": format_,
        "center": center,
        "indent": indent,
        "wordwrap": wordwrap,
        "join": join,
        "replace": replace,
        "batch": batch,
        "slice": slice_,
        "tojson": tojson,
        "forceescape": forceescape,
        LOOP_FILTER: _counted,
    }


_GUARDED = frozenset(guarded_filters(1)) - {LOOP_FILTER}


class Budget:
    """The steps, time and built characters one render has left (see :class:`Limits`).

    Every string or container a guarded operation builds is charged (its :func:`weight`), so
    that many values each within the size cap (``range(n)|map('center', 500000)``) cannot add
    up to gigabytes either: a render may build :data:`BUILT_FACTOR` times ``max_bytes``."""

    __slots__ = ("built", "deadline", "left", "limits")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.left = limits.max_steps
        self.built = 0
        self.deadline = 0.0  # set on the first check: most renders never make one

    def spend(self) -> None:
        left = self.left - 1
        self.left = left
        # The clock is read every 16 steps: a step is cheap (the size limits see to that).
        if left <= 0 or not left & 0xF:
            self._check()

    def counted(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            left = self.left - 1
            self.left = left
            if left <= 0 or not left & 0xF:
                self._check()
            yield item

    def charge(self, size: int) -> None:
        self.built += size
        if self.built > self.limits.max_bytes * BUILT_FACTOR:
            raise BudgetError(
                f"the render built more than {self.limits.max_bytes * BUILT_FACTOR} characters "
                f"of strings and lists ({BUILT_FACTOR} times the size cap)"
            )

    def _check(self) -> None:
        if self.left <= 0:
            raise BudgetError(
                f"the render went over its budget of {self.limits.max_steps} steps "
                "(loop iterations and calls)"
            )
        now = time.perf_counter()
        if not self.deadline:
            self.deadline = now + self.limits.max_seconds
        elif now > self.deadline:
            raise BudgetError(
                f"the render ran for more than its budget of {self.limits.max_seconds:g}s"
            )


# The budget of the render running in this thread (or task), set by the sandbox around each
# render: guarded filters and operators charge what they build to it.
CURRENT: ContextVar[Budget | None] = ContextVar("onetomany_template_budget", default=None)


def guarded_globals(cap: int) -> dict[str, Any]:
    """Jinja's default globals that can build something large, refusing to go over ``cap``."""

    def lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
        if isinstance(n, int) and isinstance(max, int):
            _width(n * max * 12, cap, "lipsum() size")
        return generate_lorem_ipsum(n, html, min, max)

    return {"lipsum": lipsum}
