"""Settings handed to a plugin instance: its name, its plugin, and its options.

Options whose key looks like a secret (password, token, secret, api_key, ...) are masked in
every printable form, so a settings object can be logged or shown in an error safely.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs

from onetomany.errors import ConfigError
from onetomany.plugins.options import MASK

_SECRET_KEY = re.compile(r"pass|secret|token|api_?key|auth|credential|private", re.IGNORECASE)

T = TypeVar("T")


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def masked(options: Mapping[str, Any], secrets: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A copy of ``options`` with every secret value replaced by a mask: the keys in
    ``secrets`` (declared secret by the plugin's options) and those named like a secret."""
    return {
        k: (MASK if (k in secrets or is_secret_key(k)) and v else v) for k, v in options.items()
    }


def _names(names: Iterable[str]) -> frozenset[str]:
    return frozenset(names)


@attrs.frozen(kw_only=True, repr=False)
class PluginSettings:
    """What a program says about one channel or source instance.

    ``name`` is the instance's name in the program (``email``), ``plugin`` the registered
    type it uses (``smtp``), ``base_dir`` the folder relative paths are read from, and
    ``origin`` where the settings were written (``program.toml: channels.email``) so errors
    can point there.
    """

    name: str
    plugin: str
    options: Mapping[str, Any] = attrs.field(factory=dict, converter=dict)
    base_dir: Path = attrs.field(factory=Path.cwd, converter=Path)
    origin: str = ""
    #: Option keys the plugin declares secret (see :func:`onetomany.plugins.options.secret`);
    #: the core fills it in when it reads the options.
    secrets: frozenset[str] = attrs.field(default=frozenset(), converter=_names)

    def __repr__(self) -> str:
        return (
            f"PluginSettings(name={self.name!r}, plugin={self.plugin!r}, "
            f"options={masked(self.options, self.secrets)!r})"
        )

    __str__ = __repr__

    def _error(self, key: str, reason: str) -> ConfigError:
        return ConfigError(reason, file=self.origin or None, key=f"{self.name}.{key}")

    def get(self, key: str, kind: type[T], default: T) -> T:
        """The option ``key`` checked to be a ``kind``, or ``default`` when absent."""
        if key not in self.options:
            return default
        return self._typed(key, kind)

    def require(self, key: str, kind: type[T]) -> T:
        """The option ``key``; a missing one is a :class:`ConfigError` naming the key."""
        if key not in self.options:
            raise self._error(key, f"the {self.plugin!r} plugin needs this option")
        return self._typed(key, kind)

    def path(self, key: str, default: str | None = None) -> Path:
        """The option ``key`` as a path, relative paths resolved against ``base_dir``."""
        raw = self.get(key, str, default) if default is not None else self.require(key, str)
        path = Path(raw).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def _typed(self, key: str, kind: type[T]) -> T:
        value = self.options[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            shown = MASK if key in self.secrets or is_secret_key(key) else repr(value)
            raise self._error(key, f"expected {kind.__name__}, got {shown}")
        return value
