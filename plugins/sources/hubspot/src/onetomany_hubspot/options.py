"""The options of the HubSpot plugins, typed (see :mod:`onetomany.plugins.options`).

The private-app token comes from ``token`` or from the environment variable ``token_env``
names (``HUBSPOT_TOKEN`` by default); either way it never appears in a message or a ``repr``.
"""

from __future__ import annotations

import os
from typing import Literal

import attrs

from onetomany.errors import ConfigError
from onetomany.plugins.options import http_url, option, read_options, secret
from onetomany.plugins.settings import PluginSettings

DEFAULT_URL = "https://api.hubapi.com"


def _page_size(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 1 <= value <= 200:
        raise ConfigError(f"HubSpot's search pages hold 1 to 200, got {value}", key=attribute.name)


def _base_url(url: object) -> str:
    return str(url).rstrip("/")


def resolve_token(token: str, variable: str) -> str:
    """The token given, else the one in ``variable``; a ConfigError naming what is unset."""
    if token:
        return token
    found = os.environ.get(variable, "")
    if not found:
        raise ConfigError(
            f"no token: set token, or the environment variable {variable}", key="token_env"
        )
    return found


@attrs.frozen(kw_only=True)
class Connection:
    """The options both plugins reach HubSpot with: a private app's token and the address."""

    token: str = secret("", help="the private app's access token (else token_env)")
    token_env: str = option("HUBSPOT_TOKEN", help="the environment variable holding the token")
    base_url: str = option(
        DEFAULT_URL,
        help="the API's address (a local fake in tests)",
        converter=_base_url,
        validator=http_url,
    )

    def resolved_token(self) -> str:
        return resolve_token(self.token, self.token_env)


@attrs.frozen(kw_only=True)
class HubSpotOptions(Connection):
    """What ``[sources.NAME]`` may say to the ``hubspot`` source."""

    account_property: str = option(
        "",
        help="the company property holding the program's account id (unset: the company id)",
    )
    company_traits: tuple[str, ...] = option(
        ("domain", "industry", "numberofemployees"),
        help="company properties copied into the account's traits",
    )
    contact_traits: tuple[str, ...] = option(
        ("jobtitle",), help="contact properties copied into the contact's traits"
    )
    role_property: str = option(
        "hs_persona", help="the contact property the contact's role is read from"
    )
    roles: dict[str, str] = option(
        factory=dict,
        help="the role property's values -> the program's roles (unset: the value itself)",
    )
    owner_trait: str = option(
        "owner", help="the account trait the company owner's email is written to (its CSM)"
    )
    two_companies: Literal["primary", "skip"] = option(
        "primary",
        help="a contact in several companies: take the primary one, or skip the contact",
    )
    page_size: int = option(100, help="records per search page (1 to 200)", validator=_page_size)


def source_options(settings: PluginSettings) -> HubSpotOptions:
    options = read_options(
        HubSpotOptions,
        settings.options,
        where=settings.name,
        file=settings.origin or None,
        base_dir=settings.base_dir,
    )
    try:
        options.resolved_token()
    except ConfigError as exc:
        raise ConfigError(
            exc.reason, file=settings.origin or None, key=f"{settings.name}.token_env"
        ) from None
    return options
