"""Fixtures for the template engine tests: a template folder builder, a context, a reference."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from templating_support import WriteFiles


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "templates"
    path.mkdir()
    return path


@pytest.fixture
def write(folder: Path) -> WriteFiles:
    """Write ``{relative path: text}`` into the template folder; returns the folder."""

    def write_files(files: Mapping[str, str] | None = None, /, **named: str) -> Path:
        for name, text in {**(files or {}), **named}.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return folder

    return write_files


@pytest.fixture
def context() -> dict[str, Any]:
    """A context shaped like the one the engine passes."""
    return {
        "contact": {
            "id": "c1",
            "name": "Ann Lee",
            "first_name": "Ann",
            "email": "ann@customer.test",
            "vip": True,
        },
        "account": {"id": "a1", "name": "Customer & Co", "traits": {"plan": "pro", "seats": 12}},
        "touch": {"name": "welcome"},
        "event": None,
        "unsubscribe_url": "https://app.acme.test/u/abc?x=1&y=2",
        "program": {"name": "Onboarding", "constants": {"support": "help@acme.test"}},
    }
