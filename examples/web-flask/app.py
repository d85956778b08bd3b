"""Flask embedding onetomany: signup identifies and tracks, a worker thread ticks and
dispatches, and the onetomany web app is mounted under /onetomany.

Flask speaks WSGI and the onetomany app is ASGI, so it goes through a2wsgi's ASGIMiddleware
(ASGI to WSGI) inside werkzeug's DispatcherMiddleware, which sends /onetomany/... to it and
everything else to Flask:

    pip install 'onetomany[web]' flask a2wsgi
    flask --app examples/web-flask/app.py run

The logged-in user is read from the X-Demo-User header: a stand-in for the host's session.
"""

from __future__ import annotations

import atexit
import sys
from pathlib import Path
from typing import Any

from a2wsgi import ASGIMiddleware
from flask import Flask, abort, request
from werkzeug.middleware.dispatcher import DispatcherMiddleware

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "web-program"))
from acme_backend import Backend

from onetomany.web import create_app

backend = Backend()
backend.start_worker()
atexit.register(backend.stop_worker)

app = Flask(__name__)


@app.post("/signup")
def signup() -> dict[str, Any]:
    body = request.get_json(silent=True) or {}
    fields = ("user_id", "name", "email", "company")
    if not all(isinstance(body.get(f), str) for f in fields):
        abort(400, f"give {', '.join(fields)}")
    backend.signup(body["user_id"], name=body["name"], email=body["email"], company=body["company"])
    return {"status": "welcome"}


@app.get("/api/inbox-token")
def inbox_token() -> dict[str, str]:
    user = request.headers.get("X-Demo-User") or abort(401)
    return {"token": backend.inbox_token(user)}


app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
    app.wsgi_app,
    {"/onetomany": ASGIMiddleware(create_app(backend.engine, keys=backend.keys))},  # type: ignore[arg-type]
)
