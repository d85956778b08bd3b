"""The systemd units in deploy/systemd: systemd-analyze verify accepts them, and every
ExecStart is an onetomany command with options that exist."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from onetomany.cli.commands import app

UNITS = Path(__file__).parent.parent / "deploy" / "systemd"
INSTALLED = "/opt/onetomany/venv/bin/onetomany"
ONETOMANY = Path(sys.executable).parent / "onetomany"


def _units() -> list[Path]:
    return sorted(p for p in UNITS.iterdir() if p.suffix in {".service", ".timer"})


def test_systemd_analyze_verify_accepts_every_unit(tmp_path: Path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip(
            "systemd-analyze is not installed (Debian package systemd; .ci/run installs it)"
        )
    copies = []
    for unit in _units():
        # verify checks that ExecStart is executable: point it at this environment's command.
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace(INSTALLED, str(ONETOMANY)))
        copies.append(copy)
    # A template is verified through an instance of it.
    for template in [c for c in copies if c.name.endswith("@.service")]:
        instance = template.with_name(template.name.replace("@.", "@1."))
        shutil.copy(template, instance)
        copies.append(instance)
    result = subprocess.run(
        [analyze, "verify", *map(str, copies)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    # Unknown keys are only warnings: any output at all is a problem in a unit.
    assert result.stderr.strip() == "", result.stderr


@pytest.mark.parametrize("unit", [u.name for u in _units() if u.suffix == ".service"])
def test_each_exec_start_is_a_real_command_line(unit: str):
    lines = [
        line.removeprefix("ExecStart=")
        for line in (UNITS / unit).read_text().splitlines()
        if line.startswith("ExecStart=")
    ]
    assert len(lines) == 1
    binary, name, *args = shlex.split(lines[0])
    assert binary == INSTALLED
    group = typer.main.get_command(app)
    with group.make_context("onetomany", [name, "--help"], resilient_parsing=True) as ctx:
        command = group.get_command(ctx, name)  # type: ignore[attr-defined]
    assert command is not None, f"{unit}: no command {name!r}"
    # Parsing fails on an unknown option or a bad value, as the service would at start.
    command.make_context(name, args)
