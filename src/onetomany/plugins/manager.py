"""Finding, loading and asking plugins.

Built-in plugins (listed in :data:`DEFAULT_PLUGINS`) are registered first, in that order, then
every entry point in group ``onetomany``, one by one. An entry point that fails to import is
reported by its name and distribution as a :class:`PluginLoadWarning`, or raised as
:class:`~onetomany.errors.PluginImportError` when ``ONETOMANY_STRICT_PLUGINS=1``; it never takes
the host down otherwise. ``ONETOMANY_DISABLE_PLUGINS=a,b`` skips plugins by name.
"""

from __future__ import annotations

import importlib
import logging
import os
import warnings
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

import attrs
import pluggy

from onetomany.delivery.channels import Channel
from onetomany.delivery.webhooks import WebhookParser
from onetomany.errors import PluginError, PluginImportError
from onetomany.plugins import hookspecs
from onetomany.plugins.registry import Owner, Registry
from onetomany.plugins.sources import Source

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "onetomany"
STRICT_ENV = "ONETOMANY_STRICT_PLUGINS"
DISABLE_ENV = "ONETOMANY_DISABLE_PLUGINS"

#: Built-in plugins: (plugin name, module), registered explicitly before entry points.
DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (
    ("inapp", "onetomany.plugins.builtin.inbox"),
    ("outbox", "onetomany.plugins.builtin.outbox_folder"),
)

CORE_DISTRIBUTION = "onetomany"


class PluginLoadWarning(UserWarning):
    """A plugin could not be loaded; the host runs on without it."""


@attrs.frozen(kw_only=True)
class PluginInfo:
    """What ``onetomany plugins`` shows for one plugin."""

    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...] = ()
    status: str = "ok"  # ok, broken or disabled
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self, recurse=False) | {"hooks": list(self.hooks)}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str) -> set[str]:
    return {part.strip() for part in os.environ.get(name, "").split(",") if part.strip()}


def _core_version() -> str:
    from onetomany import __version__

    return __version__


class Plugins:
    """The plugin manager of one engine, with typed views of what plugins registered.

    :param strict: raise instead of warn when an entry point fails to import; defaults to
        ``ONETOMANY_STRICT_PLUGINS``.
    :param disabled: plugin names to skip; defaults to ``ONETOMANY_DISABLE_PLUGINS``.
    :param load_entry_points: ``False`` registers the built-in plugins only (useful in tests).
    """

    def __init__(
        self,
        *,
        strict: bool | None = None,
        disabled: Iterable[str] | None = None,
        load_entry_points: bool = True,
    ) -> None:
        self.strict = _env_flag(STRICT_ENV) if strict is None else strict
        self.disabled = _env_list(DISABLE_ENV) if disabled is None else set(disabled)
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        self._infos: dict[str, PluginInfo] = {}
        for name, module_name in DEFAULT_PLUGINS:
            if self._skip(name, CORE_DISTRIBUTION, _core_version()):
                continue
            self.register(
                importlib.import_module(module_name),
                name=name,
                distribution=CORE_DISTRIBUTION,
                version=_core_version(),
            )
        if load_entry_points:
            for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
                self._load(entry_point)
        self._check_pending()

    @property
    def hook(self) -> Any:
        return self.manager.hook

    # -- loading ----------------------------------------------------------------------------

    def _skip(self, name: str, distribution: str | None, version: str | None) -> bool:
        if name not in self.disabled:
            return False
        self._infos[name] = PluginInfo(
            name=name, distribution=distribution, version=version, status="disabled"
        )
        return True

    def _load(self, entry_point: EntryPoint) -> None:
        dist = entry_point.dist
        distribution = dist.name if dist else None
        version = dist.version if dist else None
        if self._skip(entry_point.name, distribution, version):
            return
        if entry_point.name in self._infos:
            self._fail(
                entry_point.name,
                distribution,
                version,
                f"plugin name {entry_point.name!r} is already taken by "
                f"distribution {self._infos[entry_point.name].distribution!r}",
                cause=None,
            )
            return
        try:
            module = entry_point.load()
        except Exception as exc:
            self._fail(entry_point.name, distribution, version, f"{type(exc).__name__}: {exc}", exc)
            return
        self.register(module, name=entry_point.name, distribution=distribution, version=version)

    def _fail(
        self,
        name: str,
        distribution: str | None,
        version: str | None,
        reason: str,
        cause: BaseException | None,
    ) -> None:
        message = (
            f'Error importing plugin "{name}" from distribution "{distribution or "unknown"}": '
            f"{reason}"
        )
        if self.strict:
            raise PluginImportError(message, plugin=name, distribution=distribution) from cause
        warnings.warn(message, PluginLoadWarning, stacklevel=3)
        self._infos[name] = PluginInfo(
            name=name, distribution=distribution, version=version, status="broken", error=reason
        )

    def _check_pending(self) -> None:
        try:
            self.manager.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.manager.get_name(exc.plugin) or repr(exc.plugin)
            info = self._infos.get(name)
            raise PluginError(
                f"plugin {name!r} implements an unknown hook: {exc}",
                plugin=name,
                distribution=info.distribution if info else None,
            ) from exc

    def register(
        self,
        plugin: ModuleType | object,
        *,
        name: str,
        distribution: str | None = None,
        version: str | None = None,
    ) -> None:
        """Register a plugin object or module by hand (hosts and tests use this)."""
        try:
            self.manager.register(plugin, name=name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginError(
                f"plugin {name!r} cannot be registered: {exc}",
                plugin=name,
                distribution=distribution,
            ) from exc
        hooks = tuple(sorted(caller.name for caller in self.manager.get_hookcallers(plugin) or ()))
        self._infos[name] = PluginInfo(
            name=name, distribution=distribution, version=version, hooks=hooks
        )

    def unregister(self, name: str) -> None:
        self.manager.unregister(name=name)
        self._infos.pop(name, None)

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call an observer hook on every plugin; one plugin raising never stops the others."""
        for impl in getattr(self.manager.hook, hook_name).get_hookimpls():
            try:
                impl.function(**kwargs)
            except Exception:
                log.exception("plugin %r raised in %s; carrying on", impl.plugin_name, hook_name)

    def infos(self) -> list[PluginInfo]:
        """Every plugin seen: loaded, broken or disabled, sorted by name."""
        return sorted(self._infos.values(), key=lambda info: info.name)

    # -- registries -------------------------------------------------------------------------

    def _collect(self, hook_name: str, registry: Registry[Any]) -> None:
        caller = getattr(self.manager.hook, hook_name)
        for impl in caller.get_hookimpls():
            info = self._infos.get(impl.plugin_name)
            owner = Owner(plugin=impl.plugin_name, distribution=info.distribution if info else None)
            impl.function(register=registry.bound(owner))

    def channels(self) -> Registry[type[Channel]]:
        """Every channel class plugins register, by name."""
        registry: Registry[type[Channel]] = Registry(
            "channel",
            _subclass_of(Channel),
            "a subclass of onetomany.Channel",
            problem=lambda cls: cls.contract_problem(),
        )
        self._collect("onetomany_register_channels", registry)
        return registry

    def sources(self) -> Registry[type[Source]]:
        """Every source class plugins register, by name."""
        registry: Registry[type[Source]] = Registry(
            "source", _subclass_of(Source), "a subclass of onetomany.Source"
        )
        self._collect("onetomany_register_sources", registry)
        return registry

    def template_filters(self) -> Registry[Callable[..., Any]]:
        """Every Jinja filter plugins register, by name."""
        registry: Registry[Callable[..., Any]] = Registry("template filter", callable, "callable")
        self._collect("onetomany_register_template_filters", registry)
        return registry

    def webhook_parsers(self) -> Registry[WebhookParser]:
        """Every provider webhook parser plugins register, by channel plugin name."""
        registry: Registry[WebhookParser] = Registry("webhook parser", callable, "callable")
        self._collect("onetomany_register_webhook_parsers", registry)
        return registry


def _subclass_of(base: type) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        return isinstance(value, type) and issubclass(value, base)

    return check
