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
from onetomany.plugins.registry import Register
from onetomany.plugins.settings import PluginSettings

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_stem(idempotency_key: str) -> str:
    """A readable, filesystem-safe and collision-free file name for a key."""
    readable = _UNSAFE.sub("_", idempotency_key)[:80].strip("_")
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:10]
    return f"{readable}-{digest}"


class OutboxFolderChannel(Channel):
    """Options: ``folder`` (required), ``kind`` (default ``email``), ``sender``, and for
    ``kind = "csm"`` ``due_days`` (default 2)."""

    def __init__(self, settings: PluginSettings, *, runtime: Runtime | None = None) -> None:
        super().__init__(settings, runtime=runtime)
        self.folder = settings.path("folder")
        raw_kind = settings.get("kind", str, ChannelKind.EMAIL.value)
        try:
            self._kind = ChannelKind(raw_kind)
        except ValueError:
            known = ", ".join(k.value for k in ChannelKind)
            raise ConfigError(
                f"unknown kind {raw_kind!r} (kinds: {known})",
                file=settings.origin or None,
                key=f"{settings.name}.kind",
            ) from None
        self.sender = settings.get("sender", str, "")
        self.due_days = settings.get("due_days", int, 2)
        if self.due_days < 0:
            raise ConfigError(
                f"due_days must be 0 or more, not {self.due_days}",
                file=settings.origin or None,
                key=f"{settings.name}.due_days",
            )

    @property
    def serves(self) -> ChannelKind:
        return self._kind

    def open(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create outbox folder {self.folder}: {exc}",
                file=self.settings.origin or None,
                key=f"{self.settings.name}.folder",
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
