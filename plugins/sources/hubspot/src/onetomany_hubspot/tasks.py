"""The ``hubspot_task`` channel: a CSM task filed on the account's company in HubSpot.

Each message becomes ``POST /crm/v3/objects/tasks`` with ``hs_task_subject`` (the rendered
subject), ``hs_task_body`` (the reason, the contact to reach, what the ladder already sent,
the rendered text), ``hs_timestamp`` (the due date), ``hubspot_owner_id`` (the HubSpot owner
whose email is the message's recipient, the account's ``owner`` trait) and an association to
the company (type 192, task to company). Before it, two lookups, each kept for the channel's
life: the owner by email (``GET /crm/v3/owners?email=``) and, when ``account_property`` is
set, the company by that property (a search); otherwise the account id is the company id.

What the answers mean (HubSpot's error body ``{"status": "error", "message", "category"}``):

- 201: filed; the result's id is the task's id;
- 429 (a rate limit; never retried sooner than ``Retry-After`` or the limit's window) and
  5xx: transient;
- 401 (the token), 403 (a missing scope, named), any other 4xx (``VALIDATION_ERROR``, an
  unknown owner or company): permanent;
- no connection: transient; the task request sent and no answer: unknown (HubSpot has no
  idempotency key for tasks, so a retry could file it twice). A lookup sent and unanswered
  is transient: reading twice is harmless.

The token never appears in an error: HubSpot does not echo it, and errors are masked anyway.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

import attrs
import requests

from onetomany import hookimpl
from onetomany.delivery.channels import Channel, Runtime
from onetomany.delivery.http import json_object, masked, request_failure
from onetomany.errors import (
    ConfigError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnknownOutcomeError,
)
from onetomany.model import ChannelKind, DeliveryResult, Message
from onetomany.plugins.options import option, positive
from onetomany.plugins.registry import Register
from onetomany.plugins.settings import PluginSettings
from onetomany_hubspot.client import USER_AGENT, error_text, rate_limit_wait
from onetomany_hubspot.options import Connection

__all__ = ["HubSpotTaskChannel", "HubSpotTaskOptions", "onetomany_register_channels"]

#: HubSpot's association type for a task on a company.
TASK_TO_COMPANY: Final = 192
BODY_LIMIT: Final = 65_000


def _days(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= 365:
        raise ConfigError(f"expected 0 to 365 days, got {value}", key=attribute.name)


@attrs.frozen(kw_only=True)
class HubSpotTaskOptions(Connection):
    """What ``[channels.NAME]`` may say to the ``hubspot_task`` channel."""

    account_property: str = option(
        "", help="the company property holding the account id (unset: the account id is one)"
    )
    due_in_days: int = option(
        2, help="a task is due this many days after it was queued", validator=_days
    )
    priority: str = option("HIGH", help="hs_task_priority: LOW, MEDIUM or HIGH")
    task_type: str = option("CALL", help="hs_task_type: CALL, EMAIL or TODO")
    timeout: float = option(10.0, help="seconds to wait for an answer", validator=positive)

    def __attrs_post_init__(self) -> None:
        if self.priority not in ("LOW", "MEDIUM", "HIGH"):
            raise ConfigError(
                f"expected LOW, MEDIUM or HIGH, got {self.priority!r}", key="priority"
            )
        if self.task_type not in ("CALL", "EMAIL", "TODO"):
            raise ConfigError(
                f"expected CALL, EMAIL or TODO, got {self.task_type!r}", key="task_type"
            )


class HubSpotTaskChannel(Channel):
    """Files CSM tasks on companies in HubSpot; the options are :class:`HubSpotTaskOptions`."""

    kinds = (ChannelKind.CSM,)
    Options = HubSpotTaskOptions
    options: HubSpotTaskOptions

    def __init__(self, settings: PluginSettings, *, runtime: Runtime | None = None) -> None:
        super().__init__(settings, runtime=runtime)
        try:
            self._token = self.options.resolved_token()
        except ConfigError as exc:
            raise ConfigError(
                exc.reason, file=settings.origin or None, key=f"channels.{settings.name}.token_env"
            ) from None
        self.target = urlsplit(self.options.base_url).netloc
        self._session: requests.Session | None = None
        self._owners: dict[str, str] = {}
        self._companies: dict[str, str] = {}

    def open(self) -> None:
        self.session()

    def session(self) -> requests.Session:
        if self._session is None:
            session = requests.Session()
            session.headers.update(
                {
                    "Authorization": f"Bearer {self._token}",
                    "Accept": "application/json",
                    "User-Agent": USER_AGENT,
                }
            )
            self._session = session
        return self._session

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()

    def send(self, message: Message) -> DeliveryResult:
        doing = f"{self.target}: filing {message.idempotency_key}"
        owner = self._owner(message.to, doing)
        company = self._company(message, doing)
        answer = self._call(
            "POST", "/crm/v3/objects/tasks", doing, json=self.task(message, owner, company)
        )
        task = str(answer.get("id") or "")
        if not task:
            raise PermanentDeliveryError(f"{doing}: HubSpot answered no task id")
        return DeliveryResult(provider_message_id=task, detail=f"task {task} on company {company}")

    def task(self, message: Message, owner: str, company: str) -> dict[str, Any]:
        """The task HubSpot receives for ``message``: its properties and its company."""
        return {
            "properties": {
                "hs_task_subject": message.subject or f"CSM task: {message.touch}",
                "hs_task_body": body(message)[:BODY_LIMIT],
                "hs_timestamp": due(message, days=self.options.due_in_days),
                "hubspot_owner_id": owner,
                "hs_task_status": "NOT_STARTED",
                "hs_task_priority": self.options.priority,
                "hs_task_type": self.options.task_type,
            },
            "associations": [
                {
                    "to": {"id": company},
                    "types": [
                        {
                            "associationCategory": "HUBSPOT_DEFINED",
                            "associationTypeId": TASK_TO_COMPANY,
                        }
                    ],
                }
            ],
        }

    def _owner(self, email: str, doing: str) -> str:
        if email not in self._owners:
            answer = self._lookup(
                "GET", "/crm/v3/owners", doing, params={"email": email, "limit": 1}
            )
            found = [
                o for o in answer.get("results") or [] if isinstance(o, Mapping) and o.get("id")
            ]
            if not found:
                raise PermanentDeliveryError(
                    f"{doing}: no HubSpot owner has the email {email!r} (the account's owner)"
                )
            self._owners[email] = str(found[0]["id"])
        return self._owners[email]

    def _company(self, message: Message, doing: str) -> str:
        account = message.account_id or _task_account(message)
        if not account:
            raise PermanentDeliveryError(f"{doing}: the message names no account")
        if not self.options.account_property:
            if not account.isdigit():
                raise PermanentDeliveryError(
                    f"{doing}: account {account!r} is not a HubSpot company id; set "
                    "account_property to the company property that holds it"
                )
            return account
        if account not in self._companies:
            search = {
                "filterGroups": [
                    {
                        "filters": [
                            {
                                "propertyName": self.options.account_property,
                                "operator": "EQ",
                                "value": account,
                            }
                        ]
                    }
                ],
                "properties": [self.options.account_property],
                "limit": 2,
            }
            answer = self._lookup("POST", "/crm/v3/objects/companies/search", doing, json=search)
            found = [
                str(c["id"])
                for c in answer.get("results") or []
                if isinstance(c, Mapping) and c.get("id")
            ]
            if len(found) != 1:
                raise PermanentDeliveryError(
                    f"{doing}: {len(found) or 'no'} HubSpot companies have "
                    f"{self.options.account_property} = {account!r}; expected one"
                )
            self._companies[account] = found[0]
        return self._companies[account]

    def _lookup(self, method: str, path: str, doing: str, **request: Any) -> dict[str, Any]:
        try:
            return self._call(method, path, doing, **request)
        except UnknownOutcomeError as exc:  # a read: asking again is harmless
            raise TransientDeliveryError(str(exc)) from exc

    def _call(self, method: str, path: str, doing: str, **request: Any) -> dict[str, Any]:
        try:
            response = self.session().request(
                method,
                self.options.base_url + path,
                timeout=self.options.timeout,
                allow_redirects=False,
                **request,
            )
        except requests.RequestException as exc:
            raise self._hidden(request_failure(exc, target=self.target, doing=doing)) from exc
        if response.status_code < 300:
            answer = json_object(response)
            if not answer:
                raise PermanentDeliveryError(f"{doing}: {method} {path} answered no JSON object")
            return answer
        category, text = error_text(response.status_code, json_object(response) or None, path)
        reason = (
            f"{doing}: {method} {path} answered {response.status_code} {category}: {text}".replace(
                "  ", " "
            )
        )
        if response.status_code == 429 or response.status_code >= 500:
            raise self._hidden(
                TransientDeliveryError(reason, retry_after=rate_limit_wait(response))
            )
        raise self._hidden(PermanentDeliveryError(reason))

    def _hidden(self, error: DeliveryError) -> DeliveryError:
        return masked(error, self._token)


def _task(message: Message) -> Mapping[str, Any]:
    task = message.data.get("task")
    return task if isinstance(task, Mapping) else {}


def _task_account(message: Message) -> str | None:
    account = _task(message).get("account")
    if isinstance(account, Mapping) and account.get("id"):
        return str(account["id"])
    return None


def due(message: Message, *, days: int) -> str:
    """The task's due time (``hs_timestamp``, ISO 8601 in UTC): the template's ``due`` when it
    gives one, else ``days`` after the task was queued (or the message created)."""
    task = _task(message)
    start: datetime | None = message.created_at
    for given in (message.data.get("due"), task.get("due")):
        if given:
            with contextlib.suppress(ValueError):
                return _utc(datetime.fromisoformat(str(given)))
    queued = task.get("queued_at")
    if isinstance(queued, str):
        with contextlib.suppress(ValueError):
            start = datetime.fromisoformat(queued)
    return _utc((start or datetime.now(UTC)) + timedelta(days=days))


def _utc(when: datetime) -> str:
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def body(message: Message) -> str:
    """The task's notes: why, whom to reach, what came before, the rendered text."""
    task = _task(message)
    lines = [str(task.get("reason") or f"touch {message.touch!r} fired")]
    contact = task.get("contact")
    if isinstance(contact, Mapping):
        reach = ", ".join(
            str(contact[f]) for f in ("name", "role", "email", "phone") if contact.get(f)
        )
        lines.append(f"Contact: {reach or contact.get('id')}")
    steps = [s for s in task.get("ladder") or [] if isinstance(s, Mapping)]
    if steps:
        lines.append("Sent so far:")
        lines += [f"- {s.get('touch')} by {s.get('channel')}, {s.get('sent_at')}" for s in steps]
    if message.text.strip():
        lines += ["", message.text.strip()]
    lines += ["", f"onetomany {message.idempotency_key}"]
    return "\n".join(lines)


@hookimpl
def onetomany_register_channels(register: Register[type[Channel]]) -> None:
    register("hubspot_task", HubSpotTaskChannel)
