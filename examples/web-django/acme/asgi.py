"""Django and onetomany in one ASGI application.

Django's own ASGI handler serves the project; the onetomany app (ASGI too) is mounted under
/onetomany in front of it by a Starlette router, which also starts and stops the worker
thread with the server (lifespan):

    pip install 'onetomany[web]' django uvicorn
    cd examples/web-django && uvicorn acme.asgi:application
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "acme.settings")

from django.core.asgi import get_asgi_application
from starlette.applications import Starlette
from starlette.routing import Mount

from acme.backend import backend
from onetomany.web import create_app

django_application = get_asgi_application()


@asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    backend.start_worker()
    yield
    backend.stop_worker()


application = Starlette(
    routes=[
        Mount("/onetomany", create_app(backend.engine, keys=backend.keys)),
        Mount("/", django_application),
    ],
    lifespan=lifespan,
)
