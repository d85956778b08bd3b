"""A CSM task as a Slack message: Block Kit blocks and the plain text fallback.

What a CSM needs at a glance (the composer puts it in ``Message.data["task"]``, see
``onetomany.delivery.compose.csm_task``): the account, whom to reach, why, what the ladder
already sent, and when the task is due. Slack limits a section's text to 3,000 characters
and a message to 50 blocks; long parts are cut to fit rather than refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from onetomany.model import Message

__all__ = ["blocks", "due_date", "fallback_text"]

SECTION_LIMIT = 3000
HEADER_LIMIT = 150
#: Ladder steps shown; earlier ones are summed up in one line.
LADDER_SHOWN = 8


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _task(message: Message) -> Mapping[str, Any]:
    task = message.data.get("task")
    return task if isinstance(task, Mapping) else {}


def _escape(text: object) -> str:
    # Slack's mrkdwn reads &, < and > as markup; a name must not become a link or a mention.
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def due_date(message: Message, *, days: int) -> str:
    """The task's due date (``YYYY-MM-DD``): its own ``due`` when the template gives one,
    else ``days`` after it was queued (or created)."""
    task = _task(message)
    for given in (message.data.get("due"), task.get("due")):
        if given:
            return str(given)
    start: datetime | None = message.created_at
    queued = task.get("queued_at")
    if isinstance(queued, str):
        with contextlib.suppress(ValueError):
            start = datetime.fromisoformat(queued)
    if start is None:
        return ""
    return (start + timedelta(days=days)).date().isoformat()


def _account(task: Mapping[str, Any]) -> str:
    account = task.get("account")
    if isinstance(account, Mapping):
        return f"{account.get('name') or account.get('id')} ({account.get('id')})"
    return "no account"


def _contact(task: Mapping[str, Any]) -> str:
    contact = task.get("contact")
    if not isinstance(contact, Mapping):
        return "-"
    parts = [str(contact.get(f)) for f in ("name", "role", "email", "phone") if contact.get(f)]
    return ", ".join(parts) or str(contact.get("id") or "-")


def _ladder(task: Mapping[str, Any]) -> list[str]:
    steps = [s for s in task.get("ladder") or [] if isinstance(s, Mapping)]
    lines = [
        f"• {_escape(s.get('touch'))} by {_escape(s.get('channel'))}, {_escape(s.get('sent_at'))}"
        for s in steps[-LADDER_SHOWN:]
    ]
    if len(steps) > LADDER_SHOWN:
        lines.insert(0, f"• {len(steps) - LADDER_SHOWN} earlier step(s)")
    return lines


def fallback_text(message: Message, *, due: str) -> str:
    """The message's ``text``: what notifications and screen readers show."""
    task = _task(message)
    title = message.subject or f"CSM task: {message.touch}"
    return _cut(
        f"{title}: {_account(task)}. {task.get('reason') or ''} Due {due or 'soon'}.".replace(
            "  ", " "
        ),
        SECTION_LIMIT,
    )


def blocks(message: Message, *, due: str) -> list[dict[str, Any]]:
    """The Block Kit blocks of ``message``: a header, the account and contact, the reason and
    due date, the rendered text, and the ladder's history."""
    task = _task(message)
    title = message.subject or f"CSM task: {message.touch}"
    fields = [
        f"*Account*\n{_escape(_account(task))}",
        f"*Contact*\n{_escape(_contact(task))}",
        f"*Owner*\n{_escape(task.get('owner') or message.to)}",
        f"*Due*\n{due or '-'}",
    ]
    out: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, HEADER_LIMIT)}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": _cut(f, 2000)} for f in fields],
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": _cut(f"*Reason*\n{_escape(task.get('reason') or message.touch)}", 3000),
            },
        },
    ]
    if message.text.strip():
        out.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _cut(_escape(message.text.strip()), 3000)},
            }
        )
    ladder = _ladder(task)
    if ladder:
        out.append({"type": "divider"})
        history = "*Ladder so far*\n" + "\n".join(ladder)
        out.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(history, 3000)}})
    out.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": _cut(f"onetomany · {message.idempotency_key}", 3000)}
            ],
        }
    )
    return out
