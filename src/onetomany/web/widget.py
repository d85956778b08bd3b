"""Serves the ``<onetomany-inbox>`` web component: one JavaScript file, no dependencies.

The host's page loads ``<prefix>/widget.js`` and writes ``<onetomany-inbox api="<prefix>"
token="...">``; docs/widget.md lists its attributes, CSS custom properties and parts.
"""

from __future__ import annotations

import hashlib
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from onetomany.web.context import WebContext

WIDGET = files("onetomany.web").joinpath("static", "onetomany-inbox.js")


def routes(web: WebContext) -> list[BaseRoute]:
    source = WIDGET.read_bytes()
    etag = '"' + hashlib.sha256(source).hexdigest()[:32] + '"'
    headers = {
        "ETag": etag,
        "Cache-Control": "public, max-age=300",
        "X-Content-Type-Options": "nosniff",
    }

    async def widget(request: Request) -> Response:
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(source, media_type="text/javascript; charset=utf-8", headers=headers)

    return [Route("/widget.js", widget, methods=["GET", "HEAD"])]
