"""FastAPI embedding onetomany: signup identifies and tracks, a worker thread ticks and
dispatches, and the onetomany web app (inbox API + widget) is mounted under /onetomany.

    pip install 'onetomany[web]' fastapi uvicorn
    uvicorn app:app --app-dir examples/web-fastapi

The logged-in user is read from the X-Demo-User header: a stand-in for the host's own
session, which is what must decide whose inbox token to issue.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Header
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "web-program"))
from acme_backend import Backend

from onetomany.web import create_app

backend = Backend()


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    backend.start_worker()
    yield
    backend.stop_worker()


app = FastAPI(lifespan=lifespan)


class Signup(BaseModel):
    user_id: str
    name: str
    email: str
    company: str


@app.post("/signup")
def signup(body: Signup) -> dict[str, str]:
    backend.signup(body.user_id, name=body.name, email=body.email, company=body.company)
    return {"status": "welcome"}


@app.get("/api/inbox-token")
def inbox_token(x_demo_user: Annotated[str, Header()]) -> dict[str, str]:
    return {"token": backend.inbox_token(x_demo_user)}


app.mount("/onetomany", create_app(backend.engine, keys=backend.keys))
