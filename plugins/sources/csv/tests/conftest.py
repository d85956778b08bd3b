"""Fixtures for the CSV source tests: CSV files in tmp_path and sources reading them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from onetomany.plugins.settings import PluginSettings
from onetomany_csv import CsvSource

WriteCsv = Callable[..., Path]
MakeSource = Callable[..., CsvSource]


def write_lines(path: Path, lines: Sequence[str], encoding: str = "utf-8") -> Path:
    """Write ``lines`` as a file, so line N of the file is ``lines[N - 1]``."""
    path.write_text("".join(f"{line}\n" for line in lines), encoding=encoding)
    return path


def csv_source(base_dir: Path, **options: Any) -> CsvSource:
    return CsvSource(PluginSettings(name="crm", plugin="csv", options=options, base_dir=base_dir))


@pytest.fixture
def write_csv(tmp_path: Path) -> WriteCsv:
    """``write_csv("accounts.csv", ["id,name", "a1,Acme"])`` writes the file in tmp_path."""

    def write(name: str, lines: Sequence[str], encoding: str = "utf-8") -> Path:
        return write_lines(tmp_path / name, lines, encoding)

    return write


@pytest.fixture
def make_source(tmp_path: Path) -> MakeSource:
    """A source named ``crm`` whose relative paths are read from tmp_path."""

    def make(**options: Any) -> CsvSource:
        return csv_source(tmp_path, **options)

    return make
