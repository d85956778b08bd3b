"""The ``onetomany`` command: a thin layer over the Python API.

Every command is a few lines over :mod:`onetomany`'s public classes, so a host can do in code
whatever the CLI does.
"""

from __future__ import annotations

import json
import logging
import tempfile
import webbrowser
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from onetomany import __version__
from onetomany.cli import ops as ops_commands
from onetomany.cli.explain import explain as explain_touch
from onetomany.cli.explain import render as render_explanation
from onetomany.cli.measure import (
    goals_table,
    holdouts_table,
    metrics_tables,
    nps_tables,
    timeline_lines,
)
from onetomany.cli.preview import write_preview, write_previews
from onetomany.cli.simulate import (
    SimulationReport,
    Simulator,
    check_output,
    parse_when,
    write_touches,
)
from onetomany.cli.suppressions import suppressions_app
from onetomany.cli.syncview import SyncView
from onetomany.cli.validation import check_templates
from onetomany.engine import Engine, FromNow, RunReport, store_url_for
from onetomany.errors import ConfigError, ConfigErrors, OnetomanyError
from onetomany.metrics.diagram import mermaid
from onetomany.metrics.funnel import ALL_DIMENSIONS
from onetomany.metrics.nps import NPS_BY
from onetomany.plugins.builtin.outbox_folder import OutboxFolderChannel
from onetomany.plugins.manager import Plugins
from onetomany.plugins.options import OptionInfo, describe_options
from onetomany.plugins.sources import read_all
from onetomany.plugins.syncing import SyncReport
from onetomany.program import load_program
from onetomany.rules.capacity import render_plan
from onetomany.store import Store

app = typer.Typer(
    name="onetomany",
    help="Run one-to-many customer-success programs: journeys, triggers and touches.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Manage the store's database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(suppressions_app, name="suppressions")
app.command()(ops_commands.status)
app.command()(ops_commands.prune)
app.command()(ops_commands.tick)
app.command()(ops_commands.dispatch)

# soft_wrap: paths and messages stay on one line, so they can be copied and searched.
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)

ProgramPath = Annotated[
    Path, typer.Argument(help="A program folder (with program.toml) or the file itself.")
]
ChannelsFile = Annotated[
    Path | None,
    typer.Option(
        "--channels",
        help="A TOML file whose [channels] tables replace the program's (other providers).",
    ),
]


def _version(value: bool) -> None:
    if value:
        console.print(f"onetomany {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )


@app.command()
def plugins(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    options_of: Annotated[
        str | None,
        typer.Option("--options", metavar="NAME", help="List the options of channel NAME."),
    ] = None,
) -> None:
    """List plugins: name, distribution, version, hooks and status."""
    if options_of is not None:
        _channel_options(options_of, as_json=as_json)
        return
    infos = Plugins(strict=False).infos()
    if as_json:
        typer.echo(json.dumps([info.as_dict() for info in infos], indent=2))
        return
    table = Table("plugin", "distribution", "version", "hooks", "status")
    for info in infos:
        status = (
            info.status if info.status == "ok" else f"[red]{info.status}[/]: {info.error or ''}"
        )
        table.add_row(
            info.name, info.distribution or "", info.version or "", "\n".join(info.hooks), status
        )
    console.print(table)


def _channel_options(name: str, *, as_json: bool) -> None:
    registration = Plugins(strict=False).channels().get(name, wanted_by="--options")
    channel = registration.value
    infos = describe_options(channel.Options)
    if len(channel.kinds) > 1:
        kinds = " | ".join(f'"{kind.value}"' for kind in channel.kinds)
        help = "the kind of message it sends"
        infos.insert(
            0,
            OptionInfo(
                name="kind",
                type=kinds,
                default=f'"{channel.kinds[0].value}"',
                secret=False,
                help=help,
            ),
        )
    if as_json:
        typer.echo(json.dumps([info.as_dict() for info in infos], indent=2))
        return
    title = f"channel {name!r} ({registration.owner}): kinds " + ", ".join(
        kind.value for kind in channel.kinds
    )
    table = Table("option", "type", "default", "secret", "help", title=title)
    for info in infos:
        default = "(required)" if info.default is None else info.default
        table.add_row(info.name, info.type, default, "yes" if info.secret else "", info.help)
    console.print(table)


@app.command()
def validate(path: ProgramPath, channels_file: ChannelsFile = None) -> None:
    """Check a program: its file, every template compiled, then rendered for its sources'
    contacts (or a generated sample when they have none).

    Every problem is listed with its file, key and reason. Nothing is sent, and the program's
    own store is left alone: the sources are read into a scratch store.
    """
    program = load_program(path, channels=channels_file)
    with (
        tempfile.TemporaryDirectory(prefix="onetomany-validate-") as scratch,
        Engine(program, store=Store(Path(scratch) / "validate.db")) as engine,
    ):
        # Only the profiles matter here, so the sources are read without their events.
        for name in program.sources:
            result = read_all(engine.source(name))
            engine.identify(*result.accounts, *result.contacts)
        samples = [
            (c, engine.store.get_account(c.account_id) if c.account_id else None)
            for c in engine.store.all_contacts()[:50]
        ]
        checked = check_templates(program, samples, templates=engine.templates)
    if checked.problems:
        errors.print(
            f"[red]error[/]: {len(checked.problems)} template problem(s) ({checked.summary()})",
            highlight=False,
        )
        for problem in checked.problems:
            errors.print(f"  {problem}", highlight=False, markup=False)
        raise typer.Exit(1)
    console.print(
        f"[green]ok[/]: program {program.name!r}, {len(program.touches)} touch(es), "
        f"{checked.summary()}",
        highlight=False,
    )


@app.command()
def sync(
    path: ProgramPath,
    source: Annotated[
        list[str] | None,
        typer.Option("--source", "-s", help="Sync only this source (repeat for more)."),
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Read everything again, ignoring the stored cursors.")
    ] = False,
) -> None:
    """Pull the program's sources into its store, page by page, with a progress bar each.

    A source that fails keeps what it stored before the error; the others still run, and the
    command exits with 1.
    """
    program = load_program(path)
    unknown = [name for name in source or () if name not in program.sources]
    if unknown:
        known = ", ".join(program.sources) or "none"
        raise typer.BadParameter(f"unknown source {unknown[0]!r} (the program has: {known})")
    failed = 0
    with Engine(program) as engine, SyncView(errors) as view:
        for name in source or list(program.sources):
            view.start(name)
            try:
                [report] = engine.sync([name], full=full, on_page=view.update)
            except OnetomanyError as exc:
                view.failed(name, exc)
                failed += 1
            else:
                view.done(report)
    if failed:
        raise typer.Exit(1)


@app.command()
def run(
    path: ProgramPath,
    once: Annotated[bool, typer.Option("--once", help="Run one round, then exit.")] = False,
    interval: Annotated[
        float, typer.Option(help="Seconds between rounds when running continuously.")
    ] = 60.0,
    from_now: Annotated[
        bool,
        typer.Option(
            "--from-now",
            help="On a store the engine has not run on: treat the events already there (and "
            "in the sources) as history, and start cadences at their next occurrence.",
        ),
    ] = False,
    channels_file: ChannelsFile = None,
) -> None:
    """Run a program: sync its sources, queue triggered touches, deliver what is due."""
    program = load_program(path, channels=channels_file)
    with Engine(program) as engine:
        synced: tuple[SyncReport, ...] = ()
        if from_now:
            started = engine.start_from_now()
            synced = started.synced
            _print_from_now(started)
        elif not engine.has_handled_events():
            synced = tuple(engine.sync())
            replaying = engine.unhandled_events()
            if replaying:
                errors.print(
                    f"[yellow]warning[/]: first run on this store: replaying {replaying} "
                    "stored event(s) through the event triggers, as if each just happened; "
                    "to treat them as history, run with --from-now"
                )
        if not once:
            console.print(f"running {program.name!r} every {interval:g}s; Ctrl-C stops")
            try:
                engine.run_forever(interval=interval)
            except KeyboardInterrupt:
                console.print("stopped")
            return
        # The sources were just synced when this round had to know what they hold.
        report = attrs.evolve(engine.step(), synced=synced) if synced else engine.run_once()
        _print_round(engine, report)


def _print_from_now(started: FromNow) -> None:
    if not started.applied:
        console.print("--from-now: the engine has run on this store before; nothing skipped")
        return
    console.print(
        f"--from-now: {started.skipped_events} stored event(s) treated as history; "
        f"{started.schedules} cadence schedule(s) start at their next occurrence"
    )


def _print_round(engine: Engine, report: RunReport) -> None:
    for synced in report.synced:
        if synced.busy:
            console.print(
                f"[yellow]skipped[/] [bold]{synced.source}[/]: another worker is syncing it"
            )
            continue
        console.print(
            f"synced [bold]{synced.source}[/]: {synced.accounts} accounts, "
            f"{synced.contacts} contacts, {synced.events} events ({synced.new_events} new)"
        )
    sent = report.dispatched
    console.print(
        f"queued {report.queued} touch(es); delivered {sent.sent}, "
        f"retrying {sent.retrying}, dead-lettered {sent.dead}"
    )
    table = Table("touch", "channel", "status", "rows", title="Outbox")
    for row in engine.store.outbox_summary():
        table.add_row(row["touch"], row["channel"], row["status"], str(row["rows"]))
    console.print(table)
    for name, channel in engine.channels.items():
        if isinstance(channel, OutboxFolderChannel):
            console.print(f"channel [bold]{name}[/] wrote its messages to {channel.folder}")


@app.command()
def broadcast(
    path: ProgramPath,
    touch: Annotated[str, typer.Argument(help="The touch to send.")],
    segment: Annotated[
        str | None, typer.Option(help="The segment to reach; by default the touch's own.")
    ] = None,
    occurrence: Annotated[
        str | None,
        typer.Option(help="Names this broadcast in idempotency keys; default broadcast-<today>."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Send without asking.")] = False,
) -> None:
    """Send one touch to a segment now: shows who would get it, then asks before queuing."""
    with Engine(load_program(path)) as engine:
        plan = engine.broadcast(touch, segment=segment, occurrence=occurrence)
        table = Table("contact", "account", "role", title=f"{plan.count} recipient(s)")
        for contact in plan.recipients[:20]:
            table.add_row(contact.id, contact.account_id or "", contact.role or "")
        console.print(table)
        if plan.count > 20:
            console.print(f"... and {plan.count - 20} more")
        console.print(
            f"touch {plan.touch!r} to segment {plan.segment!r} as {plan.occurrence!r}: "
            f"{plan.count} recipient(s), {plan.already_queued} already queued before"
        )
        if plan.count == plan.already_queued:
            console.print("nothing new to send")
            return
        if not yes and not typer.confirm("Queue and send it now?", default=False):
            console.print("nothing queued")
            raise typer.Exit(1)
        sent = engine.broadcast(touch, segment=segment, occurrence=occurrence, send=True)
        report = engine.dispatch()
        console.print(
            f"queued {sent.queued}; delivered {report.sent}, retrying {report.retrying}, "
            f"dead-lettered {report.dead}, unknown {report.unknown}"
        )


@app.command()
def preview(
    path: ProgramPath,
    touch: Annotated[
        str | None, typer.Argument(help="The touch to render; every touch with --all.")
    ] = None,
    contact: Annotated[
        str | None, typer.Option(help="Render for this contact (from the program's store).")
    ] = None,
    locale: Annotated[
        str | None, typer.Option(help="Render in this locale instead of the contact's.")
    ] = None,
    all_touches: Annotated[
        bool,
        typer.Option("--all", help="Every touch, for every contact, in en, pt-BR and id."),
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Where to write; default <program>/var/preview.")
    ] = None,
    open_: Annotated[
        bool, typer.Option("--open", help="Open the first HTML file in a browser.")
    ] = False,
) -> None:
    """Render touches to files (HTML, text, SMS, WhatsApp, in-app) without sending anything."""
    program = load_program(path)
    out_dir = out or program.base_dir / "var" / "preview"
    with Engine(program) as engine:
        engine.sync()
        if all_touches:
            samples = [
                (c, engine.store.get_account(c.account_id) if c.account_id else None)
                for c in engine.store.all_contacts()
            ]
            written = write_previews(
                program, samples, out_dir=out_dir, touch_name=touch, templates=engine.templates
            )
        else:
            if touch is None or contact is None:
                raise typer.BadParameter("name a TOUCH and --contact ID, or use --all")
            person = engine.store.get_contact(contact)
            if person is None:
                raise typer.BadParameter(f"no contact {contact!r} in the program's store")
            account = engine.store.get_account(person.account_id) if person.account_id else None
            written = write_preview(
                program,
                touch,
                contact=person,
                account=account,
                locale=locale,
                out_dir=out_dir,
                templates=engine.templates,
            )
    console.print(f"wrote {len(written)} file(s) to {out_dir}")
    for file in written[:12]:
        console.print(f"  {file}")
    if open_:
        html = next((f for f in written if f.suffix == ".html"), None)
        if html is not None:
            webbrowser.open(html.resolve().as_uri())


@app.command()
def capacity(
    path: ProgramPath,
    sync: Annotated[
        bool, typer.Option("--sync/--no-sync", help="Pull the program's sources first.")
    ] = True,
) -> None:
    """Plan CSM capacity from the tier mix: accounts per CSM, CSMs needed, next hire."""
    with Engine(load_program(path)) as engine:
        if sync:
            engine.sync()
        for line in render_plan(engine.capacity_plan()):
            console.print(line, highlight=False)


@app.command()
def simulate(
    path: ProgramPath,
    from_: Annotated[
        str, typer.Option("--from", help="Start: YYYY-MM-DD (UTC midnight) or an ISO datetime.")
    ],
    to: Annotated[
        str, typer.Option("--to", help="End: YYYY-MM-DD (UTC midnight) or an ISO datetime.")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Render every message but deliver nothing.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Write every planned touch to this .csv or .json file.")
    ] = None,
    step: Annotated[
        float, typer.Option(help="Hours the clock moves between rounds.", min=0.01)
    ] = 1.0,
    store: Annotated[
        str | None,
        typer.Option(help="A scratch store to keep (URL or SQLite path); default temporary."),
    ] = None,
    channels_file: ChannelsFile = None,
) -> None:
    """Run a program over a date range on a virtual clock: who gets what, when.

    The engine runs as it does live, with its clock moved one step at a time and the sources'
    events fed as the clock passes them, against a scratch store (never the program's own).
    """
    try:
        start = parse_when(from_, option="--from")
        end = parse_when(to, option="--to")
    except ConfigError as exc:
        raise typer.BadParameter(exc.reason, param_hint=exc.key) from None
    if end <= start:
        raise typer.BadParameter(f"--to {to} is not after --from {from_}", param_hint="--to")
    if out is not None:
        check_output(out)
    simulator = Simulator(
        load_program(path, channels=channels_file),
        start,
        end,
        dry_run=dry_run,
        step=timedelta(hours=step),
        store_url=store,
    )
    with Progress(console=errors, transient=True) as bar:
        task = bar.add_task("simulating", total=len(simulator.times()))
        report = simulator.run(progress=lambda done, _total: bar.update(task, completed=done))
    _print_simulation(report)
    for folder, channels in report.folders:
        names = (
            f"channel {channels[0]} wrote its"
            if len(channels) == 1
            else f"channels {', '.join(channels)} wrote their"
        )
        console.print(f"{names} messages to {_shown(folder)}/", highlight=False)
    if out is not None:
        write_touches(report.touches, out)
        console.print(f"wrote {len(report.touches)} planned touch(es) to {_shown(out)}")
    if store is not None:
        console.print(f"the scratch store is kept at {store}")


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is under it, else absolute."""
    absolute = path.resolve()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def _print_simulation(report: SimulationReport) -> None:
    mode = "dry run: nothing delivered" if report.dry_run else "delivered"
    console.print(
        f"simulated {report.program!r} from {report.start.isoformat()} to "
        f"{report.end.isoformat()} in {report.steps} step(s) ({mode}); "
        f"{report.history_events} earlier event(s) loaded, {report.replayed_events} replayed"
    )
    days = Table("day", "touch", "segment", "sent", "dead", title="Touches per day")
    for count in report.days():
        days.add_row(
            count.day.isoformat(), count.touch, count.segment, str(count.sent), str(count.dead)
        )
    console.print(days)
    outcomes = Table(
        "touch",
        "sent",
        "deferred",
        "capped",
        "suppressed",
        "unsubscribed",
        "skipped",
        title="What the send policies did, per touch",
    )
    for o in report.outcomes():
        outcomes.add_row(
            o.touch,
            *map(str, (o.sent, o.deferred, o.capped, o.suppressed, o.unsubscribed, o.skipped)),
        )
    console.print(outcomes)
    weeks = report.csm_weeks()
    if weeks:
        table = Table("CSM", "week", "tasks", title="CSM tasks per week")
        for week in weeks:
            table.add_row(week.csm, week.week, str(week.tasks))
        console.print(table)
    console.print(
        f"{len(report.touches)} planned touch(es): {report.count('sent')} sent, "
        f"{report.count('dead')} dead-lettered, {report.count('pending')} still pending"
    )


@app.command()
def explain(
    path: ProgramPath,
    subject: Annotated[str, typer.Argument(help="An account id or a contact id.")],
    touch: Annotated[str, typer.Argument(help="The touch to explain.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Say why a touch did or did not fire for an account or contact, and when it is due."""
    with Engine(load_program(path)) as engine:
        explanation = explain_touch(engine, subject, touch)
    if as_json:
        typer.echo(explanation.to_json())
        return
    lines = render_explanation(explanation)
    console.print(lines[0], style="bold", markup=False, highlight=False)
    for line in lines[1:]:
        console.print(line, markup=False, highlight=False)


StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Read this store (URL or SQLite path, a simulate --store say) instead of the "
        "program's own.",
    ),
]
FromOption = Annotated[
    str | None, typer.Option("--from", help="From: YYYY-MM-DD (UTC midnight) or ISO datetime.")
]
ToOption = Annotated[
    str | None, typer.Option("--to", help="Until (excluded): YYYY-MM-DD or ISO datetime.")
]


def _measuring_engine(path: Path, store: str | None) -> Engine:
    program = load_program(path)
    return Engine(program, store=Store(store) if store is not None else None)


def _range(from_: str | None, to: str | None) -> tuple[datetime | None, datetime | None]:
    try:
        since = parse_when(from_, option="--from") if from_ is not None else None
        until = parse_when(to, option="--to") if to is not None else None
    except ConfigError as exc:
        raise typer.BadParameter(exc.reason, param_hint=exc.key) from None
    if since is not None and until is not None and until <= since:
        raise typer.BadParameter(f"--to {to} is not after --from {from_}", param_hint="--to")
    return since, until


@app.command()
def metrics(
    path: ProgramPath,
    by: Annotated[
        list[str] | None,
        typer.Option(help=f"Group by (repeatable): {', '.join(ALL_DIMENSIONS)}; default all."),
    ] = None,
    from_: FromOption = None,
    to: ToOption = None,
    store: StoreOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Funnels per touch: queued, sent, delivered, opened, clicked, bounced, ... and rates,
    by touch, channel, locale, segment, tier and week."""
    since, until = _range(from_, to)
    with _measuring_engine(path, store) as engine:
        found = engine.metrics(by=by or ALL_DIMENSIONS, since=since, until=until)
        goals = engine.conversions(since=since, until=until)
    if as_json:
        data = found.as_dict() | {"goals": [g.as_dict() for g in goals]}
        typer.echo(json.dumps(data, indent=2))
        return
    for table in metrics_tables(found):
        console.print(table)
    if goals:
        console.print(goals_table(goals))
    if found.holdouts:
        console.print(holdouts_table(found.holdouts))


@app.command()
def nps(
    path: ProgramPath,
    by: Annotated[
        list[str] | None,
        typer.Option(help=f"Group by (repeatable): {', '.join(NPS_BY)}; default all."),
    ] = None,
    from_: FromOption = None,
    to: ToOption = None,
    store: StoreOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """NPS results: score (promoters minus detractors), response rate and the distribution
    of scores, by segment, tier, plan and period."""
    since, until = _range(from_, to)
    with _measuring_engine(path, store) as engine:
        found = engine.nps(by=by or NPS_BY, since=since, until=until)
    if as_json:
        typer.echo(json.dumps(found.as_dict(), indent=2))
        return
    for table in nps_tables(found):
        console.print(table)


@app.command()
def timeline(
    path: ProgramPath,
    subject: Annotated[str, typer.Argument(help="A contact id or an account id.")],
    tz: Annotated[
        str | None,
        typer.Option("--tz", help="Show times in this IANA timezone; default this machine's."),
    ] = None,
    store: StoreOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Everything that happened to a contact or an account, in order: events, stage and tier
    changes, decisions (queued, skipped and why), messages, deliveries, opens, clicks."""
    zone = None
    if tz is not None:
        try:
            zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise typer.BadParameter(f"{tz!r} is not an IANA timezone", param_hint="--tz") from None
    with _measuring_engine(path, store) as engine:
        found = engine.timeline(subject, tz=zone)
    if as_json:
        typer.echo(json.dumps(found.as_dict(), indent=2, ensure_ascii=False))
        return
    for line in timeline_lines(found):
        console.print(line, markup=False, highlight=False)


@app.command()
def report(
    path: ProgramPath,
    out: Annotated[Path, typer.Option(help="The HTML file to write.")] = Path("report.html"),
    from_: FromOption = None,
    to: ToOption = None,
    store: StoreOption = None,
) -> None:
    """Write one self-contained HTML report (works offline): funnel per touch, sends per
    day, CSM tasks per week, goals, NPS, journey stages, policy deferrals."""
    since, until = _range(from_, to)
    with _measuring_engine(path, store) as engine:
        written = engine.report(out, since=since, until=until)
    console.print(f"wrote the report to {_shown(written)}", highlight=False)


@app.command()
def diagram(path: ProgramPath) -> None:
    """Print the program's journeys and touches as a Mermaid flowchart."""
    typer.echo(mermaid(load_program(path)), nl=False)


@db_app.command("upgrade")
def db_upgrade(
    target: Annotated[
        str, typer.Argument(help="A program folder, a SQLite file path or a SQLAlchemy URL.")
    ],
) -> None:
    """Apply pending migrations to the store."""
    url = target
    candidate = Path(target)
    if candidate.is_dir() or candidate.name == "program.toml":
        url = store_url_for(load_program(candidate))
    store = Store(url, migrate=False)
    applied = store.upgrade()
    store.close()
    console.print(f"{store!r}: " + (f"applied {', '.join(applied)}" if applied else "up to date"))


def main() -> None:
    """Entry point: runs the app and turns onetomany errors into a clear message and exit 1."""
    try:
        app()
    except ConfigErrors as exc:
        errors.print(f"[red]error[/]: {len(exc.errors)} problem(s)", highlight=False)
        for error in exc.errors:
            errors.print(f"  {error}", highlight=False, markup=False)
        raise SystemExit(1) from None
    except OnetomanyError as exc:
        errors.print(f"[red]error[/]: {type(exc).__name__}:", highlight=False, end=" ")
        errors.print(str(exc), highlight=False, markup=False)
        raise SystemExit(1) from None
