"""The Stripe source's options, checked when the source is created.

The API key is read from an environment variable (``api_key_env``, ``STRIPE_API_KEY`` by
default) or from ``api_key``; either way it never appears in a message or a ``repr``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

import attrs

from onetomany.errors import ConfigError
from onetomany.plugins.settings import PluginSettings

#: How a customer is tied to an account of the program.
MAPPINGS: Final = ("metadata", "email_domain")

_KNOWN: Final = frozenset(
    {
        "api_key",
        "api_key_env",
        "base_url",
        "account_from",
        "metadata_key",
        "domains",
        "currencies",
        "page_size",
        "event_retention_days",
    }
)


@attrs.frozen(kw_only=True, repr=False)
class StripeOptions:
    """The checked options of one Stripe source."""

    api_key: str
    base_url: str
    account_from: str
    metadata_key: str
    #: Email domain (lower case) -> account id, for ``account_from = "email_domain"``.
    domains: Mapping[str, str]
    #: Currency (lower case) -> how many units of the program's MRR currency one unit is worth.
    currencies: Mapping[str, float]
    page_size: int
    event_retention_days: int

    def __repr__(self) -> str:
        return f"StripeOptions(base_url={self.base_url!r}, account_from={self.account_from!r})"

    @property
    def test_mode(self) -> bool:
        return "_test_" in self.api_key


def read_options(settings: PluginSettings) -> StripeOptions:
    unknown = sorted(set(settings.options) - _KNOWN)
    if unknown:
        known = ", ".join(sorted(_KNOWN))
        raise option_error(settings, unknown[0], f"unknown option (known: {known})")
    account_from = settings.get("account_from", str, "metadata")
    if account_from not in MAPPINGS:
        raise option_error(
            settings, "account_from", f"expected one of {', '.join(MAPPINGS)}, got {account_from!r}"
        )
    domains = _domains(settings)
    if account_from == "email_domain" and not domains:
        raise option_error(settings, "domains", "email_domain mapping needs a domains table")
    page_size = settings.get("page_size", int, 100)
    if not 1 <= page_size <= 100:
        raise option_error(settings, "page_size", f"Stripe pages hold 1 to 100, got {page_size}")
    retention = settings.get("event_retention_days", int, 30)
    if retention < 1:
        raise option_error(settings, "event_retention_days", f"expected >= 1, got {retention}")
    return StripeOptions(
        api_key=_api_key(settings),
        base_url=settings.get("base_url", str, "https://api.stripe.com").rstrip("/"),
        account_from=account_from,
        metadata_key=settings.get("metadata_key", str, "account_id"),
        domains=domains,
        currencies=_currencies(settings),
        page_size=page_size,
        event_retention_days=retention,
    )


def option_error(settings: PluginSettings, key: str, reason: str) -> ConfigError:
    return ConfigError(reason, file=settings.origin or None, key=f"{settings.name}.{key}")


def _api_key(settings: PluginSettings) -> str:
    if "api_key" in settings.options:
        key = settings.require("api_key", str)
    else:
        variable = settings.get("api_key_env", str, "STRIPE_API_KEY")
        key = os.environ.get(variable, "")
        if not key:
            raise option_error(
                settings, "api_key_env", f"the environment variable {variable} is unset"
            )
    if not key.startswith(("sk_", "rk_")):
        # Never echo the key: say only what shape it should have.
        raise option_error(
            settings, "api_key", "expected a secret (sk_...) or restricted (rk_...) key"
        )
    return key


def _domains(settings: PluginSettings) -> dict[str, str]:
    raw: Mapping[Any, Any] = settings.get("domains", dict, {})
    domains = {}
    for domain, account in raw.items():
        if not isinstance(account, str) or not account.strip():
            raise option_error(settings, f"domains.{domain}", "expected an account id")
        domains[str(domain).strip().lower()] = account.strip()
    return domains


def _currencies(settings: PluginSettings) -> dict[str, float]:
    raw: Mapping[Any, Any] = settings.get("currencies", dict, {"usd": 1.0})
    rates = {}
    for code, rate in raw.items():
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            raise option_error(
                settings, f"currencies.{code}", f"expected a positive rate, got {rate!r}"
            )
        rates[str(code).lower()] = float(rate)
    if not rates:
        raise option_error(settings, "currencies", "name at least the currency MRR is kept in")
    return rates
