"""The dispatcher: the only code that makes anything leave the process.

One pass claims due outbox rows (with a lease, so a killed worker's rows come back), renders
each, hands them to their channel in one opened session per channel, and records every
outcome before the next message goes:

- success: the row is ``sent`` and a delivery is recorded;
- :class:`~onetomany.errors.TransientDeliveryError` (or an ``OSError`` a plugin failed to
  map): the row goes back to ``pending`` with its next attempt time, computed by tenacity's
  exponential backoff with jitter and never sooner than the error's ``retry_after``; after
  ``max_attempts`` it is dead-lettered;
- :class:`~onetomany.errors.PermanentDeliveryError`, a render failure, or any other exception:
  the row is dead-lettered with the reason.

Retries are rescheduled in the store rather than slept through in memory: a retry survives a
crash, and one slow recipient never holds up a batch.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta

import attrs

from onetomany.channels import Channel
from onetomany.clock import Clock
from onetomany.compose import Composer
from onetomany.errors import DeliveryError, OnetomanyError, TransientDeliveryError
from onetomany.model import Delivery, DeliveryResult, Message
from onetomany.plugins import Plugins
from onetomany.retry import RetryPolicy
from onetomany.store import OutboxRow, Store

log = logging.getLogger(__name__)


@attrs.define
class DispatchReport:
    """What one :meth:`Dispatcher.dispatch` did."""

    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    dead: int = 0

    def __iadd__(self, other: DispatchReport) -> DispatchReport:
        self.claimed += other.claimed
        self.sent += other.sent
        self.retrying += other.retrying
        self.dead += other.dead
        return self


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Dispatcher:
    """Claims, renders, sends and records outbox rows.

    :param channels: channel instances by the name the program gives them.
    :param lease: how long a claimed row stays with this worker before another may take it.
    :param batch_size: rows claimed at once.
    :param record_every: outcomes written to the store in one transaction. After a crash,
        rows sent but not yet recorded are sent again when their lease runs out, so this
        bounds the duplicates a crash can cause (the Message-ID stays the same, so receivers
        can drop them); 1 records every message on its own, at a cost in throughput.
    """

    def __init__(
        self,
        *,
        store: Store,
        composer: Composer,
        channels: Mapping[str, Channel],
        clock: Clock,
        plugins: Plugins,
        retry: RetryPolicy | None = None,
        lease: timedelta = timedelta(minutes=5),
        batch_size: int = 200,
        record_every: int = 20,
    ) -> None:
        self.store = store
        self.composer = composer
        self.channels = channels
        self.clock = clock
        self.plugins = plugins
        self.retry = retry or RetryPolicy()
        self.lease = lease
        self.batch_size = batch_size
        self.record_every = max(1, record_every)
        self.worker = worker_id()
        self._unrecorded: list[tuple[Delivery, datetime | None]] = []

    def dispatch(self, limit: int | None = None) -> DispatchReport:
        """Send every row due now (at most ``limit``); returns the counts."""
        total = DispatchReport()
        while limit is None or total.claimed < limit:
            size = self.batch_size if limit is None else min(self.batch_size, limit - total.claimed)
            rows = self.store.claim(
                worker=self.worker, now=self.clock.now(), lease=self.lease, limit=size
            )
            if not rows:
                break
            total += self._dispatch_rows(rows)
        return total

    def _dispatch_rows(self, rows: Sequence[OutboxRow]) -> DispatchReport:
        report = DispatchReport(claimed=len(rows))
        by_channel: dict[str, list[OutboxRow]] = {}
        for row in rows:
            by_channel.setdefault(row.channel, []).append(row)
        for name, group in by_channel.items():
            channel = self.channels.get(name)
            if channel is None:
                for row in group:
                    self._finish(row, report, error=f"unknown channel {name!r}", final=True)
                continue
            try:
                ready = list(self._compose(channel, group, report))
                if ready:
                    with channel:
                        self._send(channel, ready, report)
            finally:
                # What was sent is recorded even when a stop interrupts the batch.
                self._flush()
        return report

    def _compose(
        self, channel: Channel, rows: Sequence[OutboxRow], report: DispatchReport
    ) -> Iterator[tuple[OutboxRow, Message]]:
        contacts = self.store.get_contacts(r.contact_id for r in rows if r.contact_id)
        accounts = self.store.get_accounts(
            {c.account_id for c in contacts.values() if c.account_id}
            | {r.account_id for r in rows if r.account_id}
        )
        for row in rows:
            try:
                contact = contacts.get(row.contact_id) if row.contact_id else None
                if contact is None:
                    raise DeliveryError(f"contact {row.contact_id!r} is not in the store")
                account_id = contact.account_id or row.account_id
                account = accounts.get(account_id) if account_id else None
                yield (
                    row,
                    self.composer.compose(
                        row, contact=contact, account=account, kind=channel.serves
                    ),
                )
            except OnetomanyError as exc:
                self._finish(row, report, error=str(exc), final=True)

    def _send(
        self, channel: Channel, ready: list[tuple[OutboxRow, Message]], report: DispatchReport
    ) -> None:
        pending = list(ready)
        while pending:
            outcomes = channel.send_many([message for _, message in pending])
            try:
                for outcome in outcomes:
                    row, _ = pending.pop(0)
                    self._record(row, outcome, report)
            except Exception as exc:
                # A plugin bug or an error it did not map: charge it to the message in flight
                # and go on with the rest of the batch.
                row, _ = pending.pop(0)
                log.exception(
                    "channel %r raised while sending %s", row.channel, row.idempotency_key
                )
                self._finish(
                    row,
                    report,
                    error=f"{type(exc).__name__}: {exc}",
                    final=not isinstance(exc, OSError),
                )

    def _record(
        self, row: OutboxRow, outcome: DeliveryResult | DeliveryError, report: DispatchReport
    ) -> None:
        if isinstance(outcome, DeliveryResult):
            self._save(row, report, "sent", provider_message_id=outcome.provider_message_id)
        elif isinstance(outcome, TransientDeliveryError):
            self._finish(row, report, error=str(outcome), retry_after=outcome.retry_after)
        else:
            self._finish(row, report, error=str(outcome), final=True)

    def _finish(
        self,
        row: OutboxRow,
        report: DispatchReport,
        *,
        error: str,
        final: bool = False,
        retry_after: float | None = None,
    ) -> None:
        attempt = row.attempts + 1
        if final:
            self._save(row, report, "dead", error=error)
        elif attempt >= self.retry.max_attempts:
            self._save(row, report, "dead", error=f"gave up after {attempt} attempts: {error}")
        else:
            wait = self.retry.wait(attempt, retry_after)
            retry_at = self.clock.now() + timedelta(seconds=wait)
            self._save(row, report, "retrying", error=error, retry_at=retry_at)

    def _save(
        self,
        row: OutboxRow,
        report: DispatchReport,
        status: str,
        *,
        error: str | None = None,
        provider_message_id: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        delivery = Delivery(
            outbox_id=row.id,
            idempotency_key=row.idempotency_key,
            channel=row.channel,
            attempt=row.attempts + 1,
            status=status,
            at=self.clock.now(),
            touch=row.touch,
            contact_id=row.contact_id,
            account_id=row.account_id,
            provider_message_id=provider_message_id,
            error=error,
        )
        self._unrecorded.append((delivery, retry_at))
        setattr(report, status, getattr(report, status) + 1)
        if status != "sent":
            log.warning("%s %s: %s", status, row.idempotency_key, error)
        if len(self._unrecorded) >= self.record_every:
            self._flush()

    def _flush(self) -> None:
        outcomes, self._unrecorded = self._unrecorded, []
        self.store.record_many(outcomes)
        for delivery, _ in outcomes:
            self.plugins.notify("onetomany_delivery_recorded", delivery=delivery)
