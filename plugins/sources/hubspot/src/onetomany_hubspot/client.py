"""HubSpot's CRM API as the source uses it: one Session, retries, errors mapped to ours.

A 429 or a 5xx is retried after the wait the core's :class:`~onetomany.delivery.retry.RetryPolicy`
computes, never sooner than HubSpot asks: its ``Retry-After`` when it sends one, else the
rate-limit window it names in ``X-HubSpot-RateLimit-Interval-Milliseconds`` (the burst limit
resets when that window ends). A 429 for the *daily* limit (``policyName: DAILY``) is not
retried: nothing gets better before midnight, so the sync stops with an error that says so.

Other answers are mapped from HubSpot's error body (``{"status": "error", "message",
"category", "errors": [{"context": {"requiredGranularScopes": [...]}}]}``):

- 401 -> :class:`HubSpotAuthError` (the token is wrong or revoked);
- 403 ``MISSING_SCOPES`` -> :class:`HubSpotScopeError` naming the scope the private app lacks;
- any other 4xx -> :class:`HubSpotError` with HubSpot's category and message;
- a body that is not the JSON object documented -> :class:`MalformedAnswerError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import requests

from onetomany.delivery.retry import RetryPolicy
from onetomany.errors import InputError

log = logging.getLogger(__name__)

RETRY: Final = RetryPolicy(max_attempts=6, initial=1.0, maximum=60.0, jitter=0.5)
TIMEOUT: Final = 30.0
USER_AGENT: Final = "onetomany-hubspot/0.1"

#: The private-app scope each endpoint needs, as HubSpot names it (for when its own error
#: body does not say).
SCOPES: Final[Mapping[str, str]] = {
    "/crm/v3/objects/companies": "crm.objects.companies.read",
    "/crm/v3/objects/contacts": "crm.objects.contacts.read",
    "/crm/v4/associations/contacts/companies": "crm.objects.contacts.read",
    "/crm/v3/owners": "crm.objects.owners.read",
    "/crm/v3/objects/tasks": "crm.objects.contacts.write",
}


class HubSpotError(InputError):
    """HubSpot refused a request or answered what the plugin cannot read."""


class HubSpotAuthError(HubSpotError):
    """The token is missing, wrong, expired or revoked."""


class HubSpotScopeError(HubSpotError):
    """The private app lacks a scope: the message names it."""


class MalformedAnswerError(HubSpotError):
    """An answer that is not JSON, or not shaped as HubSpot documents it."""


def scope_for(path: str) -> str:
    """The scope HubSpot asks for ``path`` (by its longest documented prefix)."""
    for prefix in sorted(SCOPES, key=len, reverse=True):
        if path.startswith(prefix):
            return SCOPES[prefix]
    return "the scope HubSpot documents for it"


def error_text(status: int, body: Any, path: str) -> tuple[str, str]:
    """``(category, message)`` of a failure answer, the message naming a missing scope."""
    if not isinstance(body, dict):
        return "", f"HTTP {status} with no HubSpot error body"
    category = str(body.get("category") or body.get("errorType") or "")
    message = str(body.get("message") or "no detail")
    if category == "MISSING_SCOPES":
        needed = _required_scopes(body) or [scope_for(path)]
        message = f"the private app lacks the scope {' or '.join(needed)} ({message})"
    return category, message


def _required_scopes(body: dict[str, Any]) -> list[str]:
    for error in body.get("errors") or []:
        context = error.get("context") if isinstance(error, dict) else None
        if not isinstance(context, dict):
            continue
        for key in ("requiredGranularScopes", "requiredScopes"):
            scopes = context.get(key)
            if isinstance(scopes, list) and scopes:
                return [str(s) for s in scopes]
    return []


def rate_limit_wait(response: requests.Response) -> float | None:
    """Seconds HubSpot asks to wait: ``Retry-After``, else the rate-limit window."""
    retry_after = response.headers.get("Retry-After", "")
    if retry_after.strip().isdigit():
        return float(retry_after)
    interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds", "")
    if interval.strip().isdigit():
        return int(interval) / 1000
    return None


def is_daily_limit(body: Any) -> bool:
    return isinstance(body, dict) and str(body.get("policyName", "")).upper() == "DAILY"


class HubSpotClient:
    def __init__(
        self,
        *,
        token: str,
        base_url: str,
        source: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._session = requests.Session()
        self._session.headers.update({"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT})
        self._base = base_url
        self._source = source
        self._sleep = sleep

    def close(self) -> None:
        self._session.close()

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.call("POST", path, json=body)

    def get(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        return self.call("GET", path, params=params)

    def call(self, method: str, path: str, **request: Any) -> dict[str, Any]:
        where = f"source {self._source!r}: {method} {path}"
        for attempt in range(1, RETRY.max_attempts + 1):
            try:
                response = self._session.request(
                    method, self._base + path, timeout=TIMEOUT, **request
                )
            except requests.RequestException as exc:
                if attempt == RETRY.max_attempts:
                    raise HubSpotError(f"{where} failed: {type(exc).__name__}") from exc
                self._wait(where, attempt, None, type(exc).__name__)
                continue
            if response.status_code == 429 or response.status_code >= 500:
                body = _json(response)
                if is_daily_limit(body):
                    raise HubSpotError(
                        f"{where}: HubSpot's daily API limit is spent "
                        f"({error_text(429, body, path)[1]}); sync again after it resets"
                    )
                if attempt == RETRY.max_attempts:
                    break
                self._wait(where, attempt, rate_limit_wait(response), str(response.status_code))
                continue
            return self._body(where, path, response)
        raise HubSpotError(
            f"{where} still answered {response.status_code} after {RETRY.max_attempts} attempts"
        )

    def _wait(self, where: str, attempt: int, asked: float | None, why: str) -> None:
        wait = RETRY.wait(attempt, asked)
        log.info("%s answered %s; retrying in %.1fs", where, why, wait)
        self._sleep(wait)

    def _body(self, where: str, path: str, response: requests.Response) -> dict[str, Any]:
        body = _json(response)
        if response.status_code >= 400:
            category, message = error_text(response.status_code, body, path)
            if response.status_code == 401:
                raise HubSpotAuthError(
                    f"{where}: HubSpot refused the token ({message}); check the private "
                    "app's access token"
                )
            if category == "MISSING_SCOPES" or response.status_code == 403:
                raise HubSpotScopeError(f"{where}: {message}")
            raise HubSpotError(
                f"{where} answered {response.status_code} {category}: {message}".replace("  ", " ")
            )
        if not isinstance(body, dict):
            raise MalformedAnswerError(f"{where} answered a body that is not a JSON object")
        return body


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
