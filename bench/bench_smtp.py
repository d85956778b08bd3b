"""Delivery throughput: the engine against a hand-written loop and the wire limit.

Three runs send N emails each to the same aiosmtpd sink, which runs in a separate process:

1. limit: one prebuilt message's bytes sent N times on one reused smtplib connection;
2. hand-written: per recipient, render the compiled HTML with Jinja, build the MIME message
   with the stdlib's email package, send it on one reused smtplib connection;
3. engine: N touches queued through the engine (durable outbox, retries on, a delivery and an
   event recorded per message) and dispatched through the SMTP plugin.

It prints each throughput and the ratios against the two baselines. Run: ``make bench`` or
``python bench/bench_smtp.py --n 10000``.
"""

from __future__ import annotations

import argparse
import email.policy
import multiprocessing
import smtplib
import socket
import tempfile
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import jinja2
import mjml

from onetomany import Account, Contact
from onetomany.engine import Engine
from onetomany.plugins.settings import PluginSettings
from onetomany.program import Audience, EventTrigger, Program, Touch
from onetomany.store import Store
from onetomany.templating import html_to_text

TEMPLATE = Path(__file__).with_name("welcome.mjml")
SUBJECT = "Welcome to Acme Analytics, {{ contact.first_name }}"
SENDER = "Acme Success <success@acme.test>"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sink(
    port: int, ready: multiprocessing.synchronize.Event, stop: multiprocessing.synchronize.Event
) -> None:
    from aiosmtpd.controller import Controller

    class Discard:
        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    controller = Controller(Discard(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


def _body(source: str) -> str:
    return source.split("+++", 2)[2]


def _context(i: int) -> dict[str, object]:
    return {
        "contact": {
            "first_name": f"Person{i}",
            "name": f"Person{i} Example",
            "email": f"p{i}@acme.test",
        },
        "account": {"name": "Northwind", "traits": {"plan": "pro"}},
        "program": {
            "constants": {"product": "Acme Analytics", "help_url": "https://help.acme.test"}
        },
        "unsubscribe_url": f"https://app.acme.test/u?c={i}",
    }


def limit(port: int, n: int) -> float:
    html = mjml.mjml2html(_body(TEMPLATE.read_text()))
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = SENDER, "p0@acme.test", "Welcome"
    message.set_content(html_to_text(html))
    message.add_alternative(html, subtype="html")
    raw = message.as_bytes(policy=email.policy.SMTP)  # CRLF line ends, as on the wire
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        start = time.perf_counter()
        for i in range(n):
            smtp.sendmail("success@acme.test", [f"p{i}@acme.test"], raw)
        return n / (time.perf_counter() - start)


def hand_written(port: int, n: int) -> float:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    html_template = env.from_string(mjml.mjml2html(_body(TEMPLATE.read_text())))
    subject_template = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(SUBJECT)
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        start = time.perf_counter()
        for i in range(n):
            context = _context(i)
            html = html_template.render(context)
            message = EmailMessage()
            message["From"] = SENDER
            message["To"] = f"p{i}@acme.test"
            message["Subject"] = subject_template.render(context)
            message["Date"] = format_datetime(datetime.now(UTC))
            message["Message-ID"] = make_msgid(domain="acme.test")
            message.set_content(html_to_text(html))
            message.add_alternative(html, subtype="html")
            smtp.send_message(message)
        return n / (time.perf_counter() - start)


def engine(port: int, n: int, folder: Path) -> tuple[float, float]:
    templates = folder / "templates"
    templates.mkdir()
    (templates / "welcome.mjml").write_text(TEMPLATE.read_text())
    program = Program(
        name="bench",
        touches=(
            Touch(
                name="welcome",
                trigger=EventTrigger(event="signed_up"),
                channel="email",
                template="welcome",
                audience=Audience(every=True),
            ),
        ),
        channels={
            "email": PluginSettings(
                name="email", plugin="smtp", options={"host": "127.0.0.1", "port": port}
            )
        },
        templates_dir=templates,
        sender=SENDER,
        constants={"product": "Acme Analytics", "help_url": "https://help.acme.test"},
        unsubscribe_url="https://app.acme.test/u?c={contact_id}",
        base_dir=folder,
    )
    with Engine(program, store=Store(folder / "bench.db")) as live:
        live.identify(Account(id="a1", name="Northwind", traits={"plan": "pro"}))
        live.identify(
            *(
                Contact(
                    id=f"c{i}", account_id="a1", name=f"Person{i} Example", email=f"p{i}@acme.test"
                )
                for i in range(n)
            )
        )
        live.track("signed_up", account_id="a1")
        start = time.perf_counter()
        queued = live.tick()
        queue_rate = queued / (time.perf_counter() - start)
        start = time.perf_counter()
        report = live.dispatch()
        elapsed = time.perf_counter() - start
        assert report.sent == n, report
        return queue_rate, n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="emails per run (default 10000)")
    args = parser.parse_args()
    port = _free_port()
    ready, stop = multiprocessing.Event(), multiprocessing.Event()
    sink = multiprocessing.Process(target=_sink, args=(port, ready, stop), daemon=True)
    sink.start()
    ready.wait(10)
    try:
        wire = limit(port, args.n)
        manual = hand_written(port, args.n)
        with tempfile.TemporaryDirectory() as folder:
            queue_rate, ours = engine(port, args.n, Path(folder))
    finally:
        stop.set()
        sink.join(10)
    print(f"emails per run: {args.n}")
    print(f"limit (prebuilt bytes, one connection): {wire:8.0f} msg/s")
    print(f"hand-written (Jinja + stdlib MIME):     {manual:8.0f} msg/s")
    print(f"engine (outbox, retries, records):      {ours:8.0f} msg/s")
    print(f"engine queueing (tick):                 {queue_rate:8.0f} touches/s")
    print(f"engine / hand-written: {ours / manual:.2f}x")
    print(f"engine / limit:        {ours / wire:.2f}x")
    print(f"hand-written / limit:  {manual / wire:.2f}x")


if __name__ == "__main__":
    main()
