"""Typed registries that registration hooks fill.

A hook receives a ``register`` callable bound to the plugin that implements it, so every
registration is attributed: a duplicate name names both plugins, and an object of the wrong
type names the plugin and its distribution.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar

import attrs

from onetomany.errors import ConfigError, RegistrationError

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


@attrs.frozen(kw_only=True)
class Owner:
    """The plugin (and the distribution that ships it) behind a registration."""

    plugin: str
    distribution: str | None = None

    def __str__(self) -> str:
        return f"plugin {self.plugin!r}" + (
            f" (distribution {self.distribution!r})" if self.distribution else ""
        )


@attrs.frozen(kw_only=True)
class Registration(Generic[T]):
    name: str
    value: T
    owner: Owner


class Register(Protocol[T_contra]):
    """The ``register`` callable a registration hook receives."""

    def __call__(self, name: str, value: T_contra) -> None: ...


class Registry(Generic[T]):
    """Names mapped to registered values, checked by ``check`` on the way in."""

    def __init__(
        self,
        what: str,
        check: Callable[[Any], bool],
        expected: str,
        problem: Callable[[Any], str | None] | None = None,
    ) -> None:
        self.what = what
        self._check = check
        self._expected = expected
        #: Further checks on a value that passed ``check``: a reason to refuse it, or None.
        self._problem = problem
        self._entries: dict[str, Registration[T]] = {}

    def bound(self, owner: Owner) -> Register[T]:
        def register(name: str, value: T) -> None:
            self.add(name, value, owner=owner)

        return register

    def add(self, name: str, value: T, *, owner: Owner) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise RegistrationError(
                f"{owner} registered a {self.what} named {name!r}; names must be identifiers",
                plugin=owner.plugin,
                distribution=owner.distribution,
            )
        if not self._check(value):
            raise RegistrationError(
                f"{owner} registered {self.what} {name!r} as {value!r}, "
                f"which is not {self._expected}",
                plugin=owner.plugin,
                distribution=owner.distribution,
            )
        problem = self._problem(value) if self._problem else None
        if problem:
            raise RegistrationError(
                f"{owner} registered {self.what} {name!r} as {value!r}, but {problem}",
                plugin=owner.plugin,
                distribution=owner.distribution,
            )
        if name in self._entries:
            first = self._entries[name].owner
            raise RegistrationError(
                f"{self.what} {name!r} is registered twice: by {first} and by {owner}",
                plugin=owner.plugin,
                distribution=owner.distribution,
            )
        self._entries[name] = Registration(name=name, value=value, owner=owner)

    def get(self, name: str, *, wanted_by: str | None = None) -> Registration[T]:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise ConfigError(
                f"unknown {self.what} {name!r} (registered: {known})", key=wanted_by
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Registration[T]]:
        return iter(sorted(self._entries.values(), key=lambda r: r.name))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return sorted(self._entries)
