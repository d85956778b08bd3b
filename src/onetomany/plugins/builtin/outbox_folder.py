"""The outbox-folder channel: writes each message into a folder instead of sending it.

For local runs and demos: emails become ``.eml`` files any mail client opens, other kinds
become ``.json``. With ``kind = "csm"`` each file is a task record for the account's owner;
``due_days`` (default 2) sets its ``data.task.due`` date, counted from when it is written.
A file is named after the message's idempotency key and written atomically, so delivering
the same key again rewrites the same file rather than adding a second one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import timedelta
from pathlib import Path

import attrs

from onetomany.delivery.channels import Channel, Runtime
from onetomany.delivery.mime import build_email, message_id, sender_domain
from onetomany.errors import ConfigError, PermanentDeliveryError, TransientDeliveryError
from onetomany.model import ChannelKind, DeliveryResult, Message
from onetomany.plugins.hookspecs import hookimpl
from onetomany.plugins.options import option
from onetomany.plugins.registry import Register
from onetomany.plugins.settings import PluginSettings

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_stem(idempotency_key: str) -> str:
    """A readable, filesystem-safe and collision-free file name for a key."""
    readable = _UNSAFE.sub("_", idempotency_key)[:80].strip("_")
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:10]
    return f"{readable}-{digest}"


def _not_negative(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ConfigError(f"must be 0 or more, not {value}", key=attribute.name)


@attrs.frozen(kw_only=True)
class OutboxFolderOptions:
    """Where the files go, and what an email or a CSM task needs that the program lacks."""

    folder: Path = option(help="the folder the files are written to (relative: to the program)")
    sender: str = option("", help="the From address when the program sets no sender")
    due_days: int = option(
        2, help="days from writing to a CSM task's due date", validator=_not_negative
    )


class OutboxFolderChannel(Channel):
    """Writes each message to a file; serves every kind (``kind``, default ``email``)."""

    kinds = tuple(ChannelKind)
    Options = OutboxFolderOptions
    options: OutboxFolderOptions

    def __init__(self, settings: PluginSettings, *, runtime: Runtime | None = None) -> None:
        super().__init__(settings, runtime=runtime)
        self.folder = self.options.folder
        self.sender = self.options.sender
        self.due_days = self.options.due_days

    def open(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create outbox folder {self.folder}: {exc}",
                file=self.settings.origin or None,
                key=f"channels.{self.settings.name}.folder",
            ) from exc

    def send(self, message: Message) -> DeliveryResult:
        self.open()
        stem = file_stem(message.idempotency_key)
        if message.kind is ChannelKind.EMAIL:
            sender = message.sender or self.sender
            if not sender:
                raise PermanentDeliveryError(
                    f"no sender for {message.idempotency_key}: set the program's sender or "
                    f"the channel's 'sender' option"
                )
            payload = build_email(message, sender=sender, date=self.runtime.clock.now())
            provider_id = message_id(message.idempotency_key, sender_domain(sender))
            path = self.folder / f"{stem}.eml"
        else:
            document = attrs.asdict(message, recurse=True, value_serializer=_json_value)
            task = document["data"].get("task")
            if message.kind is ChannelKind.CSM and isinstance(task, dict):
                due = self.runtime.clock.now() + timedelta(days=self.due_days)
                task.setdefault("due", due.date().isoformat())
            payload = json.dumps(document, indent=2, ensure_ascii=False).encode()
            provider_id = stem
            path = self.folder / f"{stem}.json"
        _write_atomically(path, payload)
        return DeliveryResult(provider_message_id=provider_id, detail=str(path))


def _json_value(_instance: object, _field: object, value: object) -> object:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _write_atomically(path: Path, payload: bytes) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    try:
        temporary.write_bytes(payload)
        os.replace(temporary, path)
    except OSError as exc:
        raise TransientDeliveryError(f"cannot write {path}: {exc}") from exc


@hookimpl
def onetomany_register_channels(register: Register[type[Channel]]) -> None:
    register("outbox", OutboxFolderChannel)
