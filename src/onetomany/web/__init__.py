"""The web surface a host mounts in its own backend (the ``onetomany[web]`` extra).

:func:`create_app` builds one ASGI application (Starlette) serving the in-app inbox API and
the ``<onetomany-inbox>`` widget; :func:`issue_token` signs the per-contact token the host's
backend hands to the browser. docs/web.md shows how to mount it in FastAPI, Flask and Django;
docs/widget.md how to embed the widget.
"""

from __future__ import annotations

from onetomany.web.app import ROUTE_MODULES, create_app, issue_token
from onetomany.web.context import RouteModule, WebContext
from onetomany.web.tokens import ContactTokens, SigningKeys, TokenError

__all__ = [
    "ROUTE_MODULES",
    "ContactTokens",
    "RouteModule",
    "SigningKeys",
    "TokenError",
    "WebContext",
    "create_app",
    "issue_token",
]
