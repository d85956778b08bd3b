"""Sending one channel's messages from several threads, each over a connection of its own.

The work of a dispatch pass is mostly waiting: for the provider's answer, for the SMTP
server's ``250``. With ``concurrency = N`` the dispatcher starts N sender threads per channel
the first time a call has rows for it, and keeps them for the rest of that
:meth:`~onetomany.delivery.dispatcher.Dispatcher.dispatch` call (:class:`Senders`); each sends
through its own instance of the channel (the channel itself, then
:meth:`~onetomany.Channel.replica` copies), opened once when its thread starts and closed when
the call ends, so each holds its own ``requests.Session`` or SMTP connection for the whole
call. The dispatching thread stays the only one that touches the outbox: it claims the next
batch, runs the policies, composes the next messages and records outcomes while the senders
wait on the network, so even one sender pipelines claiming, composing, sending and recording.

What the threads share is what the channel instances share: a failover group's circuits and
its rate limit (:mod:`onetomany.delivery.failover`, :mod:`onetomany.delivery.ratelimit`;
both take a lock), never a connection. A sender hands back each outcome as the channel
yields it, and an exception that escapes a channel is charged to the message in flight, as
the dispatcher does in one thread; one sender that fails to open leaves the work to the
others, and when none opened the rows go back as failed attempts.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence

import attrs

from onetomany.delivery.channels import Channel
from onetomany.errors import DeliveryError
from onetomany.model import Message
from onetomany.store import OutboxRow

__all__ = ["Failed", "SenderPool", "Senders", "outcomes", "reason", "unit_size"]

log = logging.getLogger(__name__)

#: Rows and the messages composed for them, sent in one ``send_many`` call.
Unit = list[tuple[OutboxRow, Message]]
#: What senders hand back: each row with its channel's outcome.
Outcomes = queue.SimpleQueue[tuple[OutboxRow, object]]


@attrs.frozen
class Failed:
    """A message the channel gave no outcome for: the error to record, and whether it is
    final (a plugin bug) or worth another attempt (an ``OSError``, a missing outcome)."""

    error: str
    final: bool = False


def reason(exc: BaseException) -> str:
    """``TypeName: message`` for an exception, even one whose message cannot be read."""
    try:
        text = str(exc)
    except Exception:  # a message that cannot be printed (deep recursion, a broken __str__)
        text = "(its message could not be read)"
    text = text if len(text) <= 2000 else text[:1999] + "\u2026"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def unit_size(channel: Channel, record_every: int) -> int:
    """Messages per ``send_many`` call: a channel with a ``send_many`` of its own gets groups
    (when it :attr:`~onetomany.Channel.sends_one_by_one`, :func:`outcomes` still checks the
    lease between two messages); one with the default gets them one at a time, so the lease
    is checked before each."""
    return record_every if type(channel).send_many is not Channel.send_many else 1


def outcomes(
    channel: Channel,
    unit: Unit,
    *,
    skip: Callable[[int], bool],
    renew: Callable[[], object] | None = None,
) -> Iterator[tuple[OutboxRow, object]]:
    """Each row of ``unit`` with what ``channel`` made of its message: the channel's outcome
    (a result, a :class:`~onetomany.errors.DeliveryError`, or whatever else it yielded), or
    :class:`Failed`. A channel that raises is charged for the message in flight only.

    For a channel that :attr:`~onetomany.Channel.sends_one_by_one`, between two messages
    ``renew`` (the lease's renewal, when due) runs and the rows ``skip`` names (their lease
    was lost) are left out: the channel's iteration is stopped and started again on the
    rest, so none of them leaves."""
    queue_ = list(unit)
    while queue_:
        sent = iter(channel.send_many([message for _, message in queue_]))
        while queue_:
            try:
                outcome = next(sent)
            except StopIteration:
                for row, _ in queue_:
                    yield row, Failed("the channel reported no outcome")
                return
            except DeliveryError as exc:
                # Raised rather than yielded: the outcome of the message in flight.
                yield queue_.pop(0)[0], exc
                break
            except Exception as exc:
                # A plugin bug or an error it did not map (building the MIME, encoding an
                # address): charge it to the message in flight, go on with the rest.
                row, _ = queue_.pop(0)
                log.exception(
                    "channel %r raised while sending %s", row.channel, row.idempotency_key
                )
                yield row, Failed(reason(exc), final=not isinstance(exc, OSError))
                break
            yield queue_.pop(0)[0], outcome
            if not (channel.sends_one_by_one and queue_):
                continue
            if renew is not None:
                renew()
            if any(skip(row.id) for row, _ in queue_):
                queue_ = [(row, message) for row, message in queue_ if not skip(row.id)]
                close = getattr(sent, "close", None)
                if close is not None:
                    close()
                break


class SenderPool:
    """Threads that send ``units`` through ``channels``, one thread per channel instance.

    :param name: the channel's name, for logs and thread names.
    :param channels: one instance per thread; each is opened by its thread and closed when
        the thread ends.
    :param skip: whether a row must not be sent any more (its lease was lost); asked just
        before a unit leaves.
    :param results: where the senders hand back outcomes (shared by the pools of one
        :class:`Senders`, so the dispatching thread waits on one queue); a new one if None.
    """

    def __init__(
        self,
        name: str,
        channels: Sequence[Channel],
        *,
        skip: Callable[[int], bool],
        results: Outcomes | None = None,
    ) -> None:
        self.name = name
        self.channels = list(channels)
        self._skip = skip
        self._work: queue.SimpleQueue[Unit | None] = queue.SimpleQueue()
        self._results: Outcomes = queue.SimpleQueue() if results is None else results
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._running = 0
        #: Why a sender could not open its channel (the last one), if one could not.
        self.open_error: str | None = None
        self._threads = [
            threading.Thread(
                target=self._run, args=(channel,), name=f"send-{name}-{i}", daemon=True
            )
            for i, channel in enumerate(self.channels)
        ]

    # -- the dispatching thread's side -------------------------------------------------------

    def start(self) -> None:
        self._running = len(self._threads)
        for thread in self._threads:
            thread.start()

    def put(self, unit: Unit) -> None:
        if unit:
            self._work.put(unit)

    def finish(self) -> None:
        """No more units: each sender ends once the queue is empty."""
        for _ in self._threads:
            self._work.put(None)

    def stop(self) -> None:
        """Send nothing more: each sender ends after the unit it is sending."""
        self._stop.set()
        self.finish()

    @property
    def running(self) -> bool:
        with self._lock:
            return self._running > 0

    def results(self, wait: float = 0.0) -> list[tuple[OutboxRow, object]]:
        """The outcomes handed back so far, waiting up to ``wait`` seconds for a first one."""
        return _drained(self._results, wait)

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    def leftovers(self) -> list[tuple[OutboxRow, Message]]:
        """Rows no sender took (every sender ended: none opened, or the pool was stopped)."""
        left: list[tuple[OutboxRow, Message]] = []
        while True:
            try:
                unit = self._work.get_nowait()
            except queue.Empty:
                return left
            if unit is not None:
                left.extend(unit)

    # -- a sender ----------------------------------------------------------------------------

    def _run(self, channel: Channel) -> None:
        try:
            try:
                channel.open()
            except Exception as exc:
                self.open_error = f"channel {self.name!r} could not open: {reason(exc)}"
                log.error("%s; its sender stops, the others go on", self.open_error)
                return
            try:
                self._send(channel)
            finally:
                try:
                    channel.close()
                except Exception:
                    log.exception("channel %r raised while closing", self.name)
        finally:
            with self._lock:
                self._running -= 1

    def _send(self, channel: Channel) -> None:
        while not self._stop.is_set():
            unit = self._work.get()
            if unit is None:
                return
            unit = [(row, message) for row, message in unit if not self._skip(row.id)]
            handed = 0
            try:
                for row, outcome in outcomes(channel, unit, skip=self._skip):
                    self._results.put((row, outcome))
                    handed += 1
            except Exception as exc:
                # Nothing above should raise; if it does, the unit's other rows are not lost.
                log.exception("sender of %r failed", self.name)
                for row, _ in unit[handed:]:
                    self._results.put((row, Failed(reason(exc))))


class Senders:
    """The sender pools of one dispatch call: one per channel, started the first time the call
    has rows for it and kept until the call ends, so each connection opens once per call and
    the senders go on sending while the dispatching thread claims and composes the next batch.

    :param threads: sender threads (connections) per channel.
    :param connections: the channel instances for a channel's threads (``threads`` of them,
        or fewer when a replica cannot be made).
    :param skip: whether a row must not be sent any more (its lease was lost).
    """

    def __init__(
        self,
        threads: int,
        connections: Callable[[str, Channel, int], list[Channel]],
        *,
        skip: Callable[[int], bool],
    ) -> None:
        self.threads = threads
        self._connections = connections
        self._skip = skip
        self._results: Outcomes = queue.SimpleQueue()
        self.pools: dict[str, SenderPool] = {}

    def pool(self, name: str, channel: Channel) -> SenderPool:
        """The running pool of channel ``name``, started on first use."""
        pool = self.pools.get(name)
        if pool is None:
            pool = SenderPool(
                name,
                self._connections(name, channel, self.threads),
                skip=self._skip,
                results=self._results,
            )
            self.pools[name] = pool
            pool.start()
        return pool

    def put(self, name: str, channel: Channel, unit: Unit) -> None:
        self.pool(name, channel).put(unit)

    def results(self, wait: float = 0.0) -> list[tuple[OutboxRow, object]]:
        """What every pool handed back so far, waiting up to ``wait`` seconds for a first one."""
        return _drained(self._results, wait)

    @property
    def running(self) -> bool:
        return any(pool.running for pool in self.pools.values())

    def stranded(self) -> list[tuple[OutboxRow, str]]:
        """Rows put to a pool whose every sender has ended (none could open), each with the
        reason; the pool takes no more rows, so they need an outcome from the caller."""
        left: list[tuple[OutboxRow, str]] = []
        for name, pool in self.pools.items():
            if pool.running:
                continue
            error = pool.open_error or f"channel {name!r}: no sender took it"
            left.extend((row, error) for row, _ in pool.leftovers())
        return left

    def finish(self) -> None:
        """No more units: each sender ends once its pool's queue is empty."""
        for pool in self.pools.values():
            pool.finish()

    def stop(self) -> None:
        """Send nothing more: each sender ends after the unit it is sending."""
        for pool in self.pools.values():
            pool.stop()

    def join(self) -> None:
        for pool in self.pools.values():
            pool.join()


def _drained(results: Outcomes, wait: float) -> list[tuple[OutboxRow, object]]:
    got: list[tuple[OutboxRow, object]] = []
    try:
        got.append(results.get(timeout=wait) if wait > 0 else results.get_nowait())
        while True:
            got.append(results.get_nowait())
    except queue.Empty:
        return got
