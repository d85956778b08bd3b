"""How a channel name sends beyond its plugin's options: failover providers, circuit, rate.

Read from a program's ``[channels.NAME]`` tables (docs/failover.md)::

    [channels.email]                      # a failover group: no plugin of its own
    providers = ["postmark", "smtp"]      # other [channels.X] tables, tried in this order
    circuit = { failures = 5, window = 60, cooldown = 30 }
    rate = "50/s"

    [channels.sms]                        # a plugin channel with a rate limit
    plugin = "twilio"
    rate = "1 segment/s"

:func:`read_routes` checks every key and reports each problem with the file and key; the
engine builds the channels (:mod:`onetomany.delivery.failover`) and checks that a group's
providers serve one kind of message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from onetomany.delivery.circuit import CircuitSettings
from onetomany.errors import ConfigError
from onetomany.rules.rate_limits import Rate, parse_rate

__all__ = ["GROUP_KEYS", "ROUTE_KEYS", "Route", "read_routes"]

#: Keys a plugin channel's table may hold besides its options.
ROUTE_KEYS = frozenset({"rate", "circuit"})
#: The keys a failover group's table may hold (it has no plugin, so no options).
GROUP_KEYS = frozenset({"providers", "circuit", "rate"})
_CIRCUIT_KEYS = ("failures", "window", "cooldown")


@attrs.frozen(kw_only=True)
class Route:
    """What a program says about how one channel name sends, beyond a plugin's options.

    ``providers``: the channels of a failover group, in order (empty for a plugin channel);
    ``rate``: its rate limit, if any; ``circuit``: when a group skips a provider.
    """

    name: str
    providers: tuple[str, ...] = ()
    rate: Rate | None = None
    circuit: CircuitSettings = attrs.field(factory=CircuitSettings)

    @property
    def is_group(self) -> bool:
        return bool(self.providers)


def read_routes(
    section: Mapping[str, Any], *, file: str | None = None
) -> tuple[dict[str, Route], list[ConfigError]]:
    """The routes of a ``[channels]`` section (groups, and plugin channels with a ``rate``),
    and every problem found; tables that are not groups and set no rate have no route."""
    routes: dict[str, Route] = {}
    errors: list[ConfigError] = []
    for name, body in section.items():
        if not isinstance(body, dict):
            continue  # the plugin reader reports it
        path = f"channels.{name}"
        if "providers" in body:
            route = _read_group(name, body, path, file, errors)
        elif "rate" in body or "circuit" in body:
            if "circuit" in body:
                errors.append(
                    ConfigError(
                        "a circuit belongs to a failover group (a table with providers = [...])",
                        file=file,
                        key=f"{path}.circuit",
                    )
                )
            route = Route(name=name, rate=_rate(body, path, file, errors))
        else:
            continue
        if route is not None:
            routes[name] = route
    _check_members(section, routes, file, errors)
    return routes, errors


def _read_group(
    name: str, body: Mapping[str, Any], path: str, file: str | None, errors: list[ConfigError]
) -> Route | None:
    for key in sorted(set(body) - GROUP_KEYS):
        why = (
            "a failover group has no plugin: its providers are other [channels.X] tables"
            if key == "plugin"
            else "unknown key in a failover group (known: circuit, providers, rate); "
            "provider options belong in the providers' own tables"
        )
        errors.append(ConfigError(why, file=file, key=f"{path}.{key}"))
    raw = body["providers"]
    key = f"{path}.providers"
    if (
        not isinstance(raw, list)
        or not raw
        or not all(isinstance(p, str) and p.strip() for p in raw)
    ):
        errors.append(
            ConfigError(
                f'expected a list of channel names such as ["postmark", "smtp"], got {raw!r}',
                file=file,
                key=key,
            )
        )
        return None
    providers = tuple(p.strip() for p in raw)
    twice = sorted({p for p in providers if providers.count(p) > 1})
    if twice:
        errors.append(ConfigError(f"named more than once: {', '.join(twice)}", file=file, key=key))
        return None
    if name in providers:
        errors.append(ConfigError("a group cannot name itself", file=file, key=key))
        return None
    return Route(
        name=name,
        providers=providers,
        rate=_rate(body, path, file, errors),
        circuit=_circuit(body.get("circuit", {}), f"{path}.circuit", file, errors),
    )


def _rate(
    body: Mapping[str, Any], path: str, file: str | None, errors: list[ConfigError]
) -> Rate | None:
    if "rate" not in body:
        return None
    try:
        return parse_rate(body["rate"], key=f"{path}.rate", file=file)
    except ConfigError as exc:
        errors.append(exc)
        return None


def _circuit(raw: object, key: str, file: str | None, errors: list[ConfigError]) -> CircuitSettings:
    if not isinstance(raw, dict):
        expected = "expected a table such as { failures = 5, window = 60, cooldown = 30 }"
        errors.append(ConfigError(f"{expected}, got {raw!r}", file=file, key=key))
        return CircuitSettings()
    values = dict(raw)
    for unknown in sorted(set(values) - set(_CIRCUIT_KEYS)):
        errors.append(
            ConfigError(
                f"unknown key (known: {', '.join(_CIRCUIT_KEYS)})",
                file=file,
                key=f"{key}.{unknown}",
            )
        )
        del values[unknown]
    while True:
        try:
            return CircuitSettings(**values)
        except ConfigError as exc:
            errors.append(ConfigError(exc.reason, file=file, key=f"{key}.{exc.key}"))
            values.pop(exc.key or "", None)


def _check_members(
    section: Mapping[str, Any],
    routes: Mapping[str, Route],
    file: str | None,
    errors: list[ConfigError],
) -> None:
    """A group's providers are plugin channels of the same program, each in one group."""
    owner: dict[str, str] = {}
    for route in routes.values():
        key = f"channels.{route.name}.providers"
        for provider in route.providers:
            if provider not in section:
                plain = (n for n in section if n not in routes or not routes[n].is_group)
                known = ", ".join(sorted(plain))
                errors.append(
                    ConfigError(
                        f"no channel {provider!r} to send through (channels: {known or 'none'})",
                        file=file,
                        key=key,
                    )
                )
            elif provider in routes and routes[provider].is_group:
                errors.append(
                    ConfigError(
                        f"{provider!r} is a group itself; list its providers instead",
                        file=file,
                        key=key,
                    )
                )
            elif provider in routes and routes[provider].rate is not None:
                errors.append(
                    ConfigError(
                        f"{provider!r} has a rate of its own; a group sends through its "
                        "providers under the group's rate, so set it on the group",
                        file=file,
                        key=f"channels.{provider}.rate",
                    )
                )
            elif provider in owner:
                errors.append(
                    ConfigError(
                        f"{provider!r} is already a provider of {owner[provider]!r}: a provider "
                        "belongs to one group (its circuit and rate are the group's)",
                        file=file,
                        key=key,
                    )
                )
            else:
                owner[provider] = route.name
