"""Delivery throughput: the engine against a hand-written loop and the wire limit.

Each run sends N emails to the same aiosmtpd sink, which runs in a separate process:

1. limit: one prebuilt message's bytes sent N times on one reused smtplib connection;
2. hand-written, the baseline: the loop a good developer writes. MJML compiled once, and a
   text template derived once from its HTML (``html_to_text`` over the HTML with its Jinja tags);
   per recipient, render both and the subject with Jinja, build the message with the stdlib's
   ``email.mime`` (multipart/alternative, quoted-printable) and ``sendmail`` its bytes on one
   reused smtplib connection;
3. hand-written, MIME bytes by hand: the same, with the message written as bytes directly
   (``binascii.b2a_qp``), as the SDK does: the fastest loop without durability;
4. hand-written, naive (extra row, the baseline of earlier runs): the text parsed from each
   rendered HTML and the message built with ``EmailMessage``;
5. engine: N touches queued through the engine (durable outbox, retries on, a delivery and an
   event recorded per message) and dispatched through the SMTP plugin.

It prints each throughput, the ratios against the baseline and the limit, and the share of an
engine message's time spent rendering it and building its MIME bytes, timed inside the engine
run itself, where the dispatcher does them: its composer's ``compose`` (render) and the SMTP
channel's preparation of each message (MIME: ``build_email`` and the envelope addresses) are
wrapped with a clock, and their time per message is divided by the engine's time per message;
the goal is at most 10%.

Then the concurrency table (bench/concurrency.py): the engine against the limit at 1, 4 and 8
connections (the engine's ``concurrency`` sender threads on SQLite, against as many threads
each sending the prebuilt bytes on a connection of its own), and across 1, 2 and 4 worker
processes on one PostgreSQL store (each worker one sender thread, against as many processes
sending the prebuilt bytes); the goal is at least 0.8x at every concurrency.
Run: ``make bench`` or ``python bench/bench_smtp.py --n 10000``.
"""

from __future__ import annotations

import argparse
import binascii
import email.policy
import functools
import multiprocessing
import os
import smtplib
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.charset import QP, Charset
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import jinja2
import mjml

from onetomany import Account, Contact
from onetomany.engine import Engine
from onetomany.plugins.settings import PluginSettings
from onetomany.program import Audience, EventTrigger, Program, Touch
from onetomany.store import Store
from onetomany.templating import html_to_text
from onetomany_smtp.channel import SmtpChannel

sys.path.insert(0, str(Path(__file__).resolve().parent))
import concurrency  # the table's machinery, beside this file

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


def _prebuilt() -> bytes:
    html = mjml.mjml2html(_body(TEMPLATE.read_text()))
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = SENDER, "p0@acme.test", "Welcome"
    message.set_content(html_to_text(html))
    message.add_alternative(html, subtype="html")
    return message.as_bytes(policy=email.policy.SMTP)  # CRLF line ends, as on the wire


def _send_prebuilt(port: int, raw: bytes, recipients: Sequence[int]) -> None:
    """The limit's loop: the same bytes to each recipient on one reused connection."""
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for i in recipients:
            smtp.sendmail("success@acme.test", [f"p{i}@acme.test"], raw)


def limit(port: int, n: int) -> float:
    raw = _prebuilt()
    start = time.perf_counter()
    _send_prebuilt(port, raw, range(n))
    return n / (time.perf_counter() - start)


def _compiled() -> tuple[jinja2.Template, jinja2.Template, jinja2.Template]:
    """The HTML, text and subject templates, each compiled once: the text template is the text
    of the compiled HTML with its Jinja tags still in it."""
    html = mjml.mjml2html(_body(TEMPLATE.read_text()))
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    text_env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return (
        env.from_string(html),
        text_env.from_string(html_to_text(html)),
        text_env.from_string(SUBJECT),
    )


_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP
_CRLF = email.policy.compat32.clone(linesep="\r\n")


def hand_written(port: int, n: int) -> float:
    html_template, text_template, subject_template = _compiled()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        start = time.perf_counter()
        for i in range(n):
            context = _context(i)
            message = MIMEMultipart("alternative")
            message["From"] = SENDER
            message["To"] = f"p{i}@acme.test"
            message["Subject"] = subject_template.render(context)
            message["Date"] = format_datetime(datetime.now(UTC))
            message["Message-ID"] = make_msgid(domain="acme.test")
            message.attach(MIMEText(text_template.render(context), "plain", _UTF8_QP))
            message.attach(MIMEText(html_template.render(context), "html", _UTF8_QP))
            raw = message.as_bytes(policy=_CRLF)  # smtplib sends bytes as they are
            smtp.sendmail("success@acme.test", [f"p{i}@acme.test"], raw)
        return n / (time.perf_counter() - start)


def _qp(body: str) -> bytes:
    return binascii.b2a_qp(body.encode(), istext=True).replace(b"\n", b"\r\n")


def hand_bytes(port: int, n: int) -> float:
    html_template, text_template, subject_template = _compiled()
    part = (
        "Content-Type: text/{}; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    )
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        start = time.perf_counter()
        for i in range(n):
            context = _context(i)
            head = (
                f"From: {SENDER}\r\nTo: p{i}@acme.test\r\n"
                f"Subject: {subject_template.render(context)}\r\n"
                f"Date: {format_datetime(datetime.now(UTC))}\r\n"
                f"Message-ID: <{i}.bench@acme.test>\r\nMIME-Version: 1.0\r\n"
                'Content-Type: multipart/alternative; boundary="=_b"\r\n\r\n--=_b\r\n'
            )
            raw = b"".join(
                (
                    head.encode(),
                    part.format("plain").encode(),
                    _qp(text_template.render(context)),
                    b"\r\n--=_b\r\n",
                    part.format("html").encode(),
                    _qp(html_template.render(context)),
                    b"\r\n--=_b--\r\n",
                )
            )
            smtp.sendmail("success@acme.test", [f"p{i}@acme.test"], raw)
        return n / (time.perf_counter() - start)


def naive(port: int, n: int) -> float:
    html_template, _, subject_template = _compiled()
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


class Stopwatch:
    """A callable standing in for ``call``, adding up the time spent in it."""

    def __init__(self, call: Callable[..., Any]) -> None:
        self.call = call
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.call(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1

    def per_call(self) -> float:
        return self.seconds / max(self.calls, 1)


def _program(port: int, folder: Path) -> Program:
    templates = folder / "templates"
    templates.mkdir(exist_ok=True)
    if not (templates / "welcome.mjml").exists():  # worker processes share the folder
        (templates / "welcome.mjml").write_text(TEMPLATE.read_text())
    return Program(
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
        windows=concurrency.ALWAYS_OPEN,  # the policy runs; a run at night is not deferred
    )


def _people(live: Engine, n: int) -> None:
    live.identify(Account(id="a1", name="Northwind", traits={"plan": "pro"}))
    live.identify(
        *(
            Contact(id=f"c{i}", account_id="a1", name=f"Person{i} Example", email=f"p{i}@acme.test")
            for i in range(n)
        )
    )
    live.track("signed_up", account_id="a1")


def engine(port: int, n: int, folder: Path) -> tuple[float, float, tuple[float, float]]:
    """Touches queued per second, messages sent per second, and the seconds per message that
    the dispatch spent composing (render) and serialising (MIME) them."""
    with Engine(_program(port, folder), store=Store(folder / "bench.db")) as live:
        _people(live, n)
        start = time.perf_counter()
        queued = live.tick()
        queue_rate = queued / (time.perf_counter() - start)
        render, mime = _timed(live)
        start = time.perf_counter()
        report = live.dispatch()
        elapsed = time.perf_counter() - start
        assert report.sent == n, report
        assert render.calls == mime.calls == n, (render.calls, mime.calls)
        return queue_rate, n / elapsed, (render.per_call(), mime.per_call())


def _timed(live: Engine) -> tuple[Stopwatch, Stopwatch]:
    """Clocks on the two steps of a send that turn an outbox row into bytes, where the
    dispatcher calls them: the composer's ``compose`` (render: the template, subject, text)
    and the SMTP channel's ``_prepare`` (MIME: ``build_email``, and the envelope addresses)."""
    composer = live.dispatcher.composer
    channel = live.channels["email"]
    assert isinstance(channel, SmtpChannel), channel
    render, mime = Stopwatch(composer.compose), Stopwatch(channel._prepare)
    composer.compose = render  # type: ignore[method-assign]
    channel._prepare = mime  # type: ignore[method-assign]
    return render, mime


# -- the concurrency table ----------------------------------------------------------------------


def engine_at(port: int, n: int, folder: Path, connections: int) -> float:
    """Messages sent per second by one engine with ``connections`` sender threads (0: in-line)."""
    with Engine(_program(port, folder), store=Store(folder / "bench.db")) as live:
        _people(live, n)
        assert live.tick() == n
        start = time.perf_counter()
        report = live.dispatch(concurrency=connections)
        elapsed = time.perf_counter() - start
        assert report.sent == n, report
        return n / elapsed


def threads_table(port: int, n: int, repeat: int) -> None:
    raw = _prebuilt()
    rows = []
    for threads, connections in [(0, 1), *((c, c) for c in concurrency.CONNECTIONS)]:
        ours = wire = 0.0
        for _ in range(repeat):
            parts = concurrency.shares(range(n), connections)
            wire = max(
                wire, concurrency.in_threads(parts, functools.partial(_send_prebuilt, port, raw))
            )
            with tempfile.TemporaryDirectory() as folder:
                ours = max(ours, engine_at(port, n, Path(folder), threads))
        label = "in-line" if threads == 0 else f"{threads} sender thread(s)"
        rows.append((f"{connections} connection(s), {label}", ours, wire))
    concurrency.print_table(rows)


def _raw_process(port: int, n: int, index: int, count: int) -> Callable[[], int]:
    raw, mine = _prebuilt(), concurrency.shares(range(n), count)[index]

    def go() -> int:
        _send_prebuilt(port, raw, mine)
        return len(mine)

    return go


def _engine_process(
    port: int, folder: str, store: str, index: int, count: int
) -> Callable[[], int]:
    live = Engine(_program(port, Path(folder)), store=Store(store), batch_size=50)

    def go() -> int:
        with live:
            return live.dispatch(concurrency=1).sent

    return go


def processes_table(port: int, n: int, repeat: int) -> None:
    with concurrency.postgres() as fresh, tempfile.TemporaryDirectory() as folder:
        if fresh is None:
            return
        rows = []
        for count in concurrency.PROCESSES:
            ours = wire = 0.0
            for _ in range(repeat):
                wire = max(
                    wire, concurrency.in_processes(count, functools.partial(_raw_process, port, n))
                )
                store = fresh()
                with Engine(_program(port, Path(folder)), store=Store(store)) as live:
                    _people(live, n)
                    assert live.tick() == n
                work = functools.partial(_engine_process, port, folder, store)
                ours = max(ours, concurrency.in_processes(count, work))
            rows.append((f"PostgreSQL, {count} worker process(es)", ours, wire))
        concurrency.print_table(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="emails per run (default 10000)")
    parser.add_argument(
        "--table-n", type=int, default=2_000, help="emails per run of the table (default 2000)"
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs of each table cell (default 2)")
    parser.add_argument(
        "--table-only", action="store_true", help="print only the concurrency table"
    )
    parser.add_argument(
        "--sqlite", action="store_true", help="leave out the PostgreSQL worker processes"
    )
    args = parser.parse_args()
    port = _free_port()
    ready, stop = multiprocessing.Event(), multiprocessing.Event()
    sink = multiprocessing.Process(target=_sink, args=(port, ready, stop), daemon=True)
    sink.start()
    ready.wait(10)
    try:
        if not args.table_only:
            figures(port, args.n)
        table(port, args)
    finally:
        stop.set()
        sink.join(10)


def figures(port: int, n: int) -> None:
    wire = limit(port, n)
    manual = hand_written(port, n)
    by_hand = hand_bytes(port, n)
    old = naive(port, n)
    with tempfile.TemporaryDirectory() as folder:
        queue_rate, ours, (render, mime) = engine(port, n, Path(folder))
    share = (render + mime) * ours
    print(f"emails per run: {n}")
    print(f"limit (prebuilt bytes, one connection):             {wire:8.0f} msg/s")
    print(f"hand-written (Jinja HTML + text, email.mime):        {manual:8.0f} msg/s  baseline")
    print(f"hand-written, MIME bytes by hand:                    {by_hand:8.0f} msg/s")
    print(f"hand-written, naive (html_to_text, EmailMessage):   {old:8.0f} msg/s")
    print(f"engine (outbox, retries, records):                   {ours:8.0f} msg/s")
    print(f"engine queueing (tick):                              {queue_rate:8.0f} touches/s")
    print(f"engine / hand-written:           {ours / manual:.2f}x")
    print(f"engine / hand-written bytes:     {ours / by_hand:.2f}x")
    print(f"engine / naive hand-written:     {ours / old:.2f}x")
    print(f"engine / limit:                  {ours / wire:.2f}x")
    print(f"hand-written / limit:            {manual / wire:.2f}x")
    print(
        f"engine render + MIME: {render * 1e6:.0f} + {mime * 1e6:.0f} us of {1e6 / ours:.0f} us "
        f"per message = {share:.1%} ({'within' if share <= 0.10 else 'OVER'} the 10% goal)"
    )


def table(port: int, args: argparse.Namespace) -> None:
    print(f"load average before the table: {os.getloadavg()[0]:.2f}")
    print(f"concurrency table: {args.table_n} emails per run, best of {args.repeat}")
    threads_table(port, args.table_n, args.repeat)
    if not args.sqlite:
        processes_table(port, args.table_n, args.repeat)
    print(f"load average after the table: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
