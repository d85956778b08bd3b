"""Named segments: a set of expressions that may reuse each other with ``segment("name")``.

Every reference is checked when the set is built, so evaluation never meets an unknown name
or a cycle: an unknown reference or a cycle is a ConfigError naming it, with the segment as
its ``key``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from onetomany.errors import ConfigError, ConfigErrors
from onetomany.rules.segments.ast import Expr, SegmentRef, walk
from onetomany.rules.segments.evaluate import Profile, evaluate
from onetomany.rules.segments.parser import parse


def references(expr: Expr) -> list[str]:
    """The segment names ``expr`` refers to, in order of first appearance."""
    names = [node.name for node in walk(expr) if isinstance(node, SegmentRef)]
    return list(dict.fromkeys(names))


class SegmentSet(Mapping[str, Expr]):
    """Named segments, parsed and checked: ``SegmentSet({"at_risk": "...", ...})``.

    ``file`` (the program file they come from, if any) goes into every error.
    """

    def __init__(self, segments: Mapping[str, str | Expr], *, file: str | None = None) -> None:
        self.file = file
        self._exprs: dict[str, Expr] = {}
        # Expressions compiled to SQL with this set's segments (see sql.compile_segment).
        self.compiled_sql: dict[Any, Any] = {}
        errors: list[ConfigError] = []
        for name, text in segments.items():
            try:
                self._exprs[name] = (
                    parse(text, file=file, key=name) if isinstance(text, str) else text
                )
            except ConfigError as exc:
                errors.append(exc)
        for name, expr in self._exprs.items():
            for ref in references(expr):
                if ref not in segments:
                    known = ", ".join(sorted(segments)) or "none"
                    errors.append(
                        ConfigError(
                            f'segment("{ref}") names no known segment (known: {known})',
                            file=file,
                            key=name,
                        )
                    )
        errors += self._cycles()
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise ConfigErrors(errors)

    def _cycles(self) -> list[ConfigError]:
        """One error per cycle of references, naming its path (a -> b -> a)."""
        errors: list[ConfigError] = []
        done: set[str] = set()
        reported: set[frozenset[str]] = set()

        def visit(name: str, path: list[str]) -> None:
            if name in path:
                cycle = [*path[path.index(name) :], name]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    errors.append(
                        ConfigError(
                            "segments refer to each other in a cycle: " + " -> ".join(cycle),
                            file=self.file,
                            key=cycle[0],
                        )
                    )
                return
            if name in done or name not in self._exprs:
                return
            for ref in references(self._exprs[name]):
                visit(ref, [*path, name])
            done.add(name)

        for name in self._exprs:
            visit(name, [])
        return errors

    def __getitem__(self, name: str) -> Expr:
        return self._exprs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._exprs)

    def __len__(self) -> int:
        return len(self._exprs)

    def __repr__(self) -> str:
        return f"SegmentSet({sorted(self._exprs)!r})"

    def expr(self, name: str) -> Expr:
        """The parsed expression of segment ``name``; ConfigError if there is none."""
        try:
            return self._exprs[name]
        except KeyError:
            raise ConfigError(f"no segment named {name!r}", file=self.file, key=name) from None

    def evaluate(self, name: str, profile: Profile, *, now: datetime) -> bool:
        """Whether ``profile`` is in segment ``name``."""
        return evaluate(self.expr(name), profile, now=now, segments=self)
