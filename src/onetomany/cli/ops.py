"""The commands an operator runs: ``status``, ``prune``, and the single steps a deployment
schedules on its own (``tick`` from a timer, ``dispatch`` workers). A few lines each over
:func:`onetomany.ops.status.read_status` and the :class:`~onetomany.engine.Engine`."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from onetomany.delivery.dispatcher import DispatchReport
from onetomany.engine import Engine
from onetomany.ops.status import Status, read_status
from onetomany.program import load_program
from onetomany.store import Store

console = Console(soft_wrap=True)

ProgramPath = Annotated[
    Path, typer.Argument(help="A program folder (with program.toml) or the file itself.")
]
StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store", help="Read this store (a SQLite path or URL) instead of the program's."
    ),
]


def _engine(path: Path, store: str | None) -> Engine:
    program = load_program(path)
    return Engine(program, store=Store(store) if store is not None else None)


def status(
    path: ProgramPath,
    as_json: Annotated[bool, typer.Option("--json", help="Print the facts as JSON.")] = False,
    serve: Annotated[
        int | None,
        typer.Option(
            "--serve",
            help="Serve the same facts as Prometheus metrics at http://ADDR:PORT/metrics "
            "until interrupted.",
            metavar="PORT",
        ),
    ] = None,
    addr: Annotated[str, typer.Option(help="The address --serve listens on.")] = "127.0.0.1",
    store: StoreOption = None,
) -> None:
    """What to watch: queue depth, the oldest due row, dead letters, attempts and error rate
    per channel (last hour), the last tick, and each source's staleness."""
    with _engine(path, store) as engine:
        if serve is not None:
            from onetomany.ops.prometheus import StoreCollector
            from onetomany.ops.prometheus import serve as serve_metrics

            collector = StoreCollector(engine.program, engine.store, now=engine.clock.now)
            server = serve_metrics(collector, serve, addr=addr)
            console.print(f"serving metrics at http://{addr}:{serve}/metrics; Ctrl-C stops")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                server.shutdown()
            return
        facts = read_status(engine.program, engine.store, now=engine.clock.now())
    if as_json:
        typer.echo(json.dumps(facts.as_dict(), indent=2, sort_keys=True))
        return
    _print_status(facts)


def _print_status(facts: Status) -> None:
    console.print(
        f"{facts.program}: {facts.queued} queued, {facts.dead} dead letter(s), oldest due row "
        f"waiting {facts.oldest_due_seconds:.0f}s",
        markup=False,
    )
    table = Table("channel", "queued", "dead", "oldest due (s)", "attempts (1h)", "error rate")
    for c in facts.channels:
        attempts = ", ".join(f"{s} {n}" for s, n in c.attempts.items()) or "-"
        table.add_row(
            c.name,
            str(c.queued),
            str(c.dead),
            f"{c.oldest_due_seconds:.0f}",
            attempts,
            f"{c.error_rate:.0%}",
        )
    console.print(table)
    tick = facts.last_tick
    if tick is None:
        console.print("last tick: none recorded")
    else:
        console.print(
            f"last tick: {tick['at']}, {float(tick['seconds']):.3f}s, queued {tick['queued']}",
            markup=False,
        )
    for s in facts.sources:
        age = "never synced" if s.staleness_seconds is None else f"{s.staleness_seconds:.0f}s ago"
        flag = " (last sync failed)" if s.failing else ""
        console.print(f"source {s.name}: last good sync {age}{flag}", markup=False)


def prune(
    path: ProgramPath,
    archive: Annotated[
        Path | None,
        typer.Option(
            "--archive",
            help="Write what is removed to gzip'd JSON lines in this folder first "
            "(default: the program's retention.archive).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would go; change nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
    store: StoreOption = None,
) -> None:
    """Apply the program's [retention]: archive, then remove old events, finished deliveries,
    decisions and spent cap reservations, never what a trigger still needs."""
    with _engine(path, store) as engine:
        report = engine.prune(archive=archive, dry_run=dry_run)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2, sort_keys=True))
        return
    verb = "would remove" if dry_run else "removed"
    console.print(
        f"{verb}: {report.events} event(s), {report.deliveries} finished outbox row(s)' "
        f"payloads and attempts, {report.decisions} decision(s), {report.cap_reservations} "
        "cap reservation(s)",
        markup=False,
    )
    for file in report.archives:
        console.print(f"archived to {file}", markup=False)


def tick(
    path: ProgramPath,
    sync: Annotated[bool, typer.Option("--sync/--no-sync", help="Pull the sources first.")] = True,
    store: StoreOption = None,
) -> None:
    """One round of deciding, for a timer: sync the sources, update tiers, segments and
    journeys, and queue the touches now due (sending is left to `onetomany dispatch`)."""
    with _engine(path, store) as engine:
        if sync:
            engine.sync()
        engine.update_tiers()
        engine.update_segments()
        engine.update_journeys()
        queued = engine.tick()
    console.print(f"queued {queued} touch(es)", markup=False)


def _stop_on_sigterm() -> None:
    """systemd stops a service with SIGTERM: raise KeyboardInterrupt instead of dying, so the
    dispatcher writes the outcomes of what it sent before the process ends."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def dispatch(
    path: ProgramPath,
    channel: Annotated[
        list[str] | None,
        typer.Option(
            "--channel",
            "-c",
            help="Send only this channel's rows (repeat for more; or ONETOMANY_CHANNELS, "
            "space-separated).",
            envvar="ONETOMANY_CHANNELS",
        ),
    ] = None,
    every: Annotated[
        float | None,
        typer.Option(
            "--every",
            help="Keep going: dispatch again this many seconds after a pass that found "
            "nothing (at once after one that did), until stopped.",
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            min=0,
            help="Sender threads per channel, each over its own connection (0: send from "
            "the dispatching thread); default: the program's [delivery] concurrency.",
            envvar="ONETOMANY_CONCURRENCY",
        ),
    ] = None,
    store: StoreOption = None,
) -> None:
    """Send the outbox rows due now, once or (with --every) as a long-running worker; any
    number may run against a PostgreSQL store, each claiming rows no other holds."""
    with _engine(path, store) as engine:
        if every is None:
            _print_dispatch(engine.dispatch(channels=channel or None, concurrency=concurrency))
            return
        _stop_on_sigterm()
        try:
            while True:
                report = engine.dispatch(channels=channel or None, concurrency=concurrency)
                if report.claimed:
                    _print_dispatch(report)
                else:
                    time.sleep(every)
        except KeyboardInterrupt:
            console.print("stopped", markup=False)


def _print_dispatch(report: DispatchReport) -> None:
    console.print(
        f"claimed {report.claimed}: delivered {report.sent}, retrying {report.retrying}, "
        f"dead-lettered {report.dead}, unknown {report.unknown}"
        + (f"; stopped: {report.stopped}" if report.stopped else ""),
        markup=False,
    )
