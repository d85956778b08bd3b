"""The three framework examples run: FastAPI (mount), Flask (a2wsgi's ASGI-to-WSGI bridge in
werkzeug's dispatcher) and Django (Django's ASGI handler behind a Starlette router). Each
signs a user up, its worker thread delivers the in-app welcome, and the mounted app serves
it to that user's token only."""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from starlette.testclient import TestClient

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
Call = Callable[..., tuple[int, Any]]


@pytest.fixture
def example_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ACME_STORE", str(tmp_path / "acme.db"))
    monkeypatch.setenv("ACME_WORKER_INTERVAL", "0.05")
    monkeypatch.delenv("ONETOMANY_WEB_KEYS", raising=False)
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:  # each example builds its backend on import
        if name == "acme_backend" or name.startswith(("acme", "example_")):
            del sys.modules[name]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _starlette_call(client: TestClient) -> Call:
    def call(method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        answer = client.request(method, path, **kwargs)
        is_json = answer.headers.get("content-type", "").startswith("application/json")
        return answer.status_code, answer.json() if is_json else answer.text

    return call


def _signup_and_read_the_welcome(call: Call) -> None:
    user = {"user_id": "u1", "name": "Ana Souza", "email": "ana@acme.test", "company": "Acme"}
    assert call("POST", "/signup", json=user)[0] == 200
    status, body = call("GET", "/api/inbox-token", headers={"X-Demo-User": "u1"})
    assert status == 200
    mine = {"Authorization": f"Bearer {body['token']}"}
    deadline = time.monotonic() + 15
    while call("GET", "/onetomany/inbox/counts", headers=mine)[1]["unread"] == 0:
        assert time.monotonic() < deadline, "the worker did not deliver the welcome tip"
        time.sleep(0.05)
    status, page = call("GET", "/onetomany/inbox", headers=mine)
    assert [(i["title"], i["url"]) for i in page["items"]] == [
        ("Welcome to Acme, Ana", "/getting-started")
    ]
    status, read = call("POST", f"/onetomany/inbox/{page['items'][0]['id']}/read", headers=mine)
    assert (status, read["counts"]["unread"]) == (200, 0)
    other = call("GET", "/api/inbox-token", headers={"X-Demo-User": "u2"})[1]["token"]
    theirs = {"Authorization": f"Bearer {other}"}
    assert call("GET", "/onetomany/inbox", headers=theirs)[1]["items"] == []
    assert call("GET", "/onetomany/inbox")[0] == 401
    status, script = call("GET", "/onetomany/widget.js")
    assert status == 200
    assert "customElements.define" in script


@pytest.mark.slow
def test_the_fastapi_example(example_env):
    module = _load("example_fastapi", EXAMPLES / "web-fastapi" / "app.py")
    try:
        with TestClient(module.app) as client:  # runs the lifespan: the worker starts
            _signup_and_read_the_welcome(_starlette_call(client))
    finally:
        module.backend.close()


@pytest.mark.slow
def test_the_flask_example(example_env):
    module = _load("example_flask", EXAMPLES / "web-flask" / "app.py")
    client = module.app.test_client()

    def call(method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        answer = client.open(path, method=method, **kwargs)
        return answer.status_code, answer.get_json(silent=True) or answer.get_data(as_text=True)

    try:
        _signup_and_read_the_welcome(call)
    finally:
        module.backend.close()


@pytest.mark.slow
def test_the_django_example(example_env, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES / "web-django"))
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "acme.settings")
    module = importlib.import_module("acme.asgi")
    try:
        with TestClient(module.application) as client:
            _signup_and_read_the_welcome(_starlette_call(client))
    finally:
        module.backend.close()
