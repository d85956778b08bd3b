"""Stripe's REST API as the source uses it: list endpoints paged, errors mapped to ours.

One :class:`requests.Session` per source (keep-alive). A 429 or a 5xx is retried after the
wait the core's :class:`~onetomany.delivery.retry.RetryPolicy` computes, never sooner than the
response's ``Retry-After``; other errors are mapped:

- 401 / 403 -> :class:`StripePermissionError` naming the endpoint and the permission a
  restricted key needs for it;
- a 400 ``resource_missing`` on a list's ``ending_before`` -> :class:`ExpiredCursorError`
  (Stripe no longer has the event the cursor names);
- a body that is not the list object Stripe documents -> :class:`MalformedPageError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

import requests

from onetomany.delivery.retry import RetryPolicy
from onetomany.errors import InputError

log = logging.getLogger(__name__)

#: The restricted-key permission each endpoint needs (Stripe's dashboard names).
PERMISSIONS: Final[Mapping[str, str]] = {
    "/v1/customers": "Customers: Read",
    "/v1/customers/search": "Customers: Read",
    "/v1/subscription_items": "Subscriptions: Read",
    "/v1/subscriptions": "Subscriptions: Read",
    "/v1/invoices": "Invoices: Read",
    "/v1/events": "Events: Read",
}

RETRY: Final = RetryPolicy(max_attempts=6, initial=1.0, maximum=60.0, jitter=0.5)
TIMEOUT: Final = 30.0


class StripeError(InputError):
    """Stripe refused a request or answered what the source cannot read."""


class StripePermissionError(StripeError):
    """The key may not read an endpoint: the message names it and the permission needed."""


class ExpiredCursorError(StripeError):
    """The event the cursor names is gone from Stripe (events are kept 30 days)."""


class MalformedPageError(StripeError):
    """A list page that is not JSON, or not a list object with ``data`` and ``has_more``."""


class StripeClient:
    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        source: str,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        self._session = session or requests.Session()
        self._session.headers["Authorization"] = f"Bearer {api_key}"
        self._base = base_url
        self._source = source
        self._sleep = sleep

    def close(self) -> None:
        self._session.close()

    def pages(self, path: str, params: Mapping[str, Any], *, limit: int) -> Iterator[list[Any]]:
        """Every page of a list endpoint, oldest page last (Stripe's own order), auto-paged
        with ``starting_after``."""
        query = {**params, "limit": limit}
        while True:
            body = self.list(path, query)
            yield body["data"]
            if not body["has_more"] or not body["data"]:
                return
            query["starting_after"] = body["data"][-1]["id"]

    def search(self, path: str, query: str, *, limit: int) -> Iterator[list[Any]]:
        """Every page of a search endpoint (Stripe's search pages by ``next_page``)."""
        params: dict[str, Any] = {"query": query, "limit": limit}
        while True:
            body = self.list(path, params, kind="search_result")
            yield body["data"]
            page = body.get("next_page")
            if not body["has_more"] or not isinstance(page, str):
                return
            params["page"] = page

    def list(self, path: str, params: Mapping[str, Any], *, kind: str = "list") -> dict[str, Any]:
        """One page of a list (or search) endpoint, checked to be one."""
        body = self.get(path, params)
        data = body.get("data")
        if (
            body.get("object") != kind
            or not isinstance(data, list)
            or not isinstance(body.get("has_more"), bool)
            or not all(isinstance(item, dict) and isinstance(item.get("id"), str) for item in data)
        ):
            raise MalformedPageError(
                f"source {self._source!r}: GET {path} ({_shown(params)}) answered a page that "
                "is not a Stripe list (object, data with ids, has_more); nothing of it was read"
            )
        return body

    def get(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        for attempt in range(1, RETRY.max_attempts + 1):
            try:
                response = self._session.get(self._base + path, params=params, timeout=TIMEOUT)
            except requests.RequestException as exc:
                if attempt == RETRY.max_attempts:
                    raise StripeError(
                        f"source {self._source!r}: GET {path} failed: {type(exc).__name__}"
                    ) from exc
                self._wait(path, attempt, None, type(exc).__name__)
                continue
            if response.status_code == 429 or response.status_code >= 500:
                if attempt == RETRY.max_attempts:
                    break
                self._wait(path, attempt, _retry_after(response), str(response.status_code))
                continue
            return self._body(path, params, response)
        raise StripeError(
            f"source {self._source!r}: GET {path} still answered {response.status_code} after "
            f"{RETRY.max_attempts} attempts"
        )

    def _wait(self, path: str, attempt: int, retry_after: float | None, why: str) -> None:
        wait = RETRY.wait(attempt, retry_after)
        log.info("source %r: GET %s answered %s; retrying in %.1fs", self._source, path, why, wait)
        self._sleep(wait)

    def _body(
        self, path: str, params: Mapping[str, Any], response: requests.Response
    ) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error", {}) if isinstance(body, dict) else {}
        message = error.get("message", "") if isinstance(error, dict) else ""
        if response.status_code in (401, 403):
            needed = PERMISSIONS.get(path, "read access")
            raise StripePermissionError(
                f"source {self._source!r}: the API key may not GET {path} "
                f"({response.status_code}: {message or 'no detail'}); a restricted key needs "
                f"{needed!r}"
            )
        missing = response.status_code == 400 and error.get("code") == "resource_missing"
        if missing and "ending_before" in params:
            raise ExpiredCursorError(
                f"source {self._source!r}: Stripe no longer has event {params['ending_before']!r}"
            )
        if response.status_code >= 400:
            raise StripeError(
                f"source {self._source!r}: GET {path} answered {response.status_code}: "
                f"{message or 'no detail'}"
            )
        if not isinstance(body, dict):
            raise MalformedPageError(
                f"source {self._source!r}: GET {path} ({_shown(params)}) answered a body that "
                "is not a JSON object"
            )
        return body


def _retry_after(response: requests.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _shown(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "first page"
