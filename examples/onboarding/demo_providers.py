"""``make demo-providers``: the onboarding example through providers' plugins, on loopback.

Starts local stand-ins of Postmark, Twilio and Slack (the fakes the plugins' tests use, each
following its provider's documented API) on 127.0.0.1, points ``providers.toml`` at them
through environment variables, and simulates the example as ``make demo`` does: its texts go
through the Twilio plugin (rate-limited to one segment a second), its CSM tasks to Slack, and its
email through a failover group, Postmark first and the outbox folder second. Postmark answers
its first calls with 503s, so the run shows the group failing over and its circuit opening.
Nothing leaves the machine.

    python examples/onboarding/demo_providers.py [--from 2026-09-01] [--to 2026-11-30]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs

from onetomany.cli.simulate import Simulator, parse_when
from onetomany.program import load_program
from onetomany.store import Store
from onetomany_postmark.testing import FakePostmark
from onetomany_slack.testing import FakeSlack
from onetomany_twilio.testing import FakeTwilio

EXAMPLE = Path(__file__).resolve().parent
#: The stand-ins' credentials: their own, for local runs only.
POSTMARK_TOKEN = "demo-postmark-token"  # noqa: S105
SLACK_TOKEN = "xoxb-demo"  # noqa: S105
TWILIO_TOKEN = "demo-auth-token"  # noqa: S105


@attrs.frozen(kw_only=True)
class DemoRun:
    """What the stand-ins received, and what the store recorded."""

    sms: list[dict[str, str]]
    slack: list[dict[str, Any]]
    postmark: list[dict[str, Any]]
    sent_by_provider: dict[str, int]
    planned: int
    sent: int


@contextmanager
def fakes() -> Iterator[tuple[FakePostmark, FakeTwilio, FakeSlack]]:
    with ExitStack() as stack:
        postmark = stack.enter_context(FakePostmark(token=POSTMARK_TOKEN))
        twilio = stack.enter_context(FakeTwilio(auth_token=TWILIO_TOKEN))
        slack = stack.enter_context(FakeSlack(token=SLACK_TOKEN))
        yield postmark, twilio, slack


@contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    """``values`` in the environment while the program is read, then as they were."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run(start: str, end: str, *, var: Path, step: timedelta = timedelta(hours=1)) -> DemoRun:
    """Simulate ``start`` to ``end`` (dates) through the stand-ins; the store goes in ``var``."""
    var.mkdir(parents=True, exist_ok=True)
    store = var / "providers.db"
    store.unlink(missing_ok=True)
    with fakes() as (postmark, twilio, slack):
        postmark.script("transient", "transient", "transient")  # down at first: failover
        environment = {
            "POSTMARK_SERVER_TOKEN": POSTMARK_TOKEN,
            "POSTMARK_BASE_URL": postmark.url,
            "TWILIO_ACCOUNT_SID": twilio.account_sid,
            "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "TWILIO_BASE_URL": twilio.url,
            "SLACK_BOT_TOKEN": SLACK_TOKEN,
            "SLACK_BASE_URL": slack.api_url,
            "ONBOARDING_OUTBOX": str(var / "outbox"),
        }
        with environ(environment):
            program = load_program(EXAMPLE, channels=EXAMPLE / "providers.toml")
        report = Simulator(
            program,
            parse_when(start, option="--from"),
            parse_when(end, option="--to"),
            step=step,
            store_url=str(store),
        ).run()
        recorded = Store(str(store))
        try:
            sent = Counter(d.provider or "" for d in recorded.deliveries() if d.status == "sent")
        finally:
            recorded.close()
        return DemoRun(
            sms=list(twilio.accepted),
            slack=list(slack.posted),
            postmark=list(postmark.accepted),
            sent_by_provider=dict(sent),
            planned=len(report.touches),
            sent=sum(1 for t in report.touches if t.status == "sent"),
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="start", default="2026-09-01")
    parser.add_argument("--to", dest="end", default="2026-11-30")
    parser.add_argument("--var", type=Path, default=EXAMPLE / "var")
    arguments = parser.parse_args(argv)
    result = run(arguments.start, arguments.end, var=arguments.var)
    print(f"{result.planned} planned touch(es), {result.sent} sent; sent per provider:")
    for provider, count in sorted(result.sent_by_provider.items()):
        print(f"  {provider:<14} {count}")
    print(f"Twilio's stand-in accepted {len(result.sms)} text(s):")
    for sms in result.sms:
        print(f"  to {sms.get('To')}: {sms.get('Body', '')[:70]}")
    print(f"Slack's stand-in got {len(result.slack)} CSM task(s) in #cs-tasks:")
    for post in result.slack:
        print(f"  {str(post.get('text', ''))[:80]}")
    print(
        f"Postmark's stand-in accepted {len(result.postmark)} email(s); the others went to "
        f"the outbox folder ({arguments.var / 'outbox'}) while its circuit was open"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
