"""Fixtures for the Stripe source tests: the fake Stripe and sources pointed at it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from onetomany.model.clock import FrozenClock
from onetomany.plugins.settings import PluginSettings
from onetomany_stripe import StripeSource

sys.path.insert(0, str(Path(__file__).parent))

from fake_stripe import KEY, FakeStripe

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
MakeSource = Callable[..., StripeSource]


@pytest.fixture
def stripe(httpserver: HTTPServer) -> Iterator[FakeStripe]:
    fake = FakeStripe(httpserver)
    yield fake
    assert fake.invalid == [], "requests Stripe's OpenAPI document refuses"


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def make_source(stripe: FakeStripe, tmp_path: Path, waits: list[float]) -> MakeSource:
    """A source named ``billing`` on the fake, its clock at NOW, its waits recorded."""

    def make(**options: Any) -> StripeSource:
        options.setdefault("api_key", KEY)
        options.setdefault("base_url", stripe.url)
        source = StripeSource(
            PluginSettings(name="billing", plugin="stripe", options=options, base_dir=tmp_path)
        )
        source.clock = FrozenClock(NOW)
        source.sleep = waits.append
        return source

    return make
