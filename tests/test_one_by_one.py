"""A channel whose own ``send_many`` still sends message by message (``sends_one_by_one``, as
the SMTP channel does) gets many messages at once, yet the lease is checked between two of
them: a row another worker took meanwhile never leaves. A batch API is never restarted."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from onetomany.delivery.channels import Channel
from onetomany.delivery.senders import outcomes
from onetomany.errors import DeliveryError
from onetomany.model import ChannelKind, DeliveryResult, Message
from onetomany.plugins.settings import PluginSettings
from onetomany.store import OutboxRow


class OneByOne(Channel):
    """Sends each message when asked for the next outcome, and notes what left."""

    kinds = (ChannelKind.EMAIL,)
    sends_one_by_one = True

    def __init__(self) -> None:
        super().__init__(PluginSettings(name="email", plugin="one-by-one"))
        self.sent: list[str] = []
        self.calls = 0

    def send(self, message: Message) -> DeliveryResult:
        self.sent.append(message.idempotency_key)
        return DeliveryResult(provider_message_id=message.idempotency_key)

    def send_many(self, messages: Sequence[Message]) -> Iterator[DeliveryResult | DeliveryError]:
        self.calls += 1
        for message in messages:
            yield self.send(message)


class Batch(OneByOne):
    """Sends the whole group in one request before the first outcome."""

    sends_one_by_one = False

    def send_many(self, messages: Sequence[Message]) -> Iterator[DeliveryResult | DeliveryError]:
        self.calls += 1
        results = [self.send(message) for message in messages]
        yield from results


def _unit(count: int) -> list[tuple[OutboxRow, Message]]:
    at = datetime(2026, 12, 1)
    return [
        (
            OutboxRow(
                id=n,
                idempotency_key=f"k{n}",
                program="p",
                touch="t",
                channel="email",
                template="t",
                contact_id=f"c{n}",
                account_id=None,
                event_id=None,
                payload={},
                status="claimed",
                attempts=0,
                available_at=at,
                claim_token="token",
            ),
            Message(
                idempotency_key=f"k{n}",
                channel="email",
                kind=ChannelKind.EMAIL,
                to=f"c{n}@example.test",
                subject="s",
                text="t",
                html="<p>t</p>",
            ),
        )
        for n in range(1, count + 1)
    ]


def test_rows_lost_between_two_messages_do_not_leave() -> None:
    channel = OneByOne()
    lost: set[int] = set()
    renewals = 0

    def renew() -> None:
        nonlocal renewals
        renewals += 1
        if renewals == 2:  # after the second message: another worker took rows 3 and 4
            lost.update({3, 4})

    settled = [
        row.id for row, _ in outcomes(channel, _unit(6), skip=lost.__contains__, renew=renew)
    ]

    assert settled == [1, 2, 5, 6]
    assert channel.sent == ["k1", "k2", "k5", "k6"]
    assert renewals == 3  # between each two messages sent: k1-k2, k2-k5, k5-k6
    assert channel.calls == 2  # stopped once, started again on the rest


def test_a_batch_api_is_never_stopped_half_way() -> None:
    channel = Batch()
    lost: set[int] = set()

    def renew() -> None:
        lost.update({3, 4})

    settled = [
        row.id for row, _ in outcomes(channel, _unit(6), skip=lost.__contains__, renew=renew)
    ]

    # Every message left in the one request: each gets its outcome, none is sent again.
    assert settled == [1, 2, 3, 4, 5, 6]
    assert channel.sent == ["k1", "k2", "k3", "k4", "k5", "k6"]
    assert channel.calls == 1
