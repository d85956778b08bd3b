"""``onetomany suppressions``: the suppression list from the command line (a few lines over
:meth:`Engine.suppress <onetomany.engine.Engine.suppress>` and its neighbours)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from onetomany.engine import Engine
from onetomany.program import load_program
from onetomany.rules.suppression import Reason

suppressions_app = typer.Typer(
    help="The suppression list: addresses never to be contacted again.", no_args_is_help=True
)
console = Console(soft_wrap=True)

ProgramPath = Annotated[
    Path, typer.Argument(help="A program folder (with program.toml) or the file itself.")
]


@suppressions_app.command("add")
def add(
    path: ProgramPath,
    address: Annotated[str, typer.Argument(help="An email address or an E.164 phone number.")],
    reason: Annotated[Reason, typer.Option(help="Why.")] = Reason.MANUAL,
    note: Annotated[str, typer.Option(help="A note kept with the entry.")] = "",
) -> None:
    """Suppress one address."""
    with Engine(load_program(path)) as engine:
        entry = engine.suppress(address, reason, source="cli", note=note)
    console.print(f"suppressed {entry.address} ({entry.reason.value})", markup=False)


@suppressions_app.command("remove")
def remove(
    path: ProgramPath,
    address: Annotated[str, typer.Argument(help="An email address or an E.164 phone number.")],
) -> None:
    """Take one address off the list."""
    with Engine(load_program(path)) as engine:
        removed = engine.unsuppress(address)
    console.print(f"removed {address}" if removed else f"{address} was not suppressed")


@suppressions_app.command("import")
def import_csv(
    path: ProgramPath,
    file: Annotated[Path, typer.Argument(help="A CSV file: address,reason[,source,at,note].")],
) -> None:
    """Add every entry of a CSV file (all or none: a bad line adds nothing)."""
    text = file.read_text(encoding="utf-8-sig")
    with Engine(load_program(path)) as engine:
        count = engine.import_suppressions(text, source=f"import:{file.name}")
    console.print(f"imported {count} entr{'y' if count == 1 else 'ies'} from {file}")


@suppressions_app.command("export")
def export_csv(
    path: ProgramPath,
    file: Annotated[
        Path | None, typer.Argument(help="Where to write the CSV (standard output if left out).")
    ] = None,
) -> None:
    """Write the suppression list as CSV."""
    with Engine(load_program(path)) as engine:
        text = engine.export_suppressions()
    if file is None:
        typer.echo(text, nl=False)
    else:
        file.write_text(text, encoding="utf-8")
        console.print(f"wrote {file}")
