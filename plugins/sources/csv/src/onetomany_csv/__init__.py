"""onetomany-csv: a onetomany source that reads accounts, contacts and events from CSV files.

Installing the distribution is enough: its entry point registers the ``csv`` source type,
which a program uses with ``[sources.NAME] plugin = "csv"``.
"""

from __future__ import annotations

from onetomany import hookimpl
from onetomany.plugins.registry import Register
from onetomany.plugins.sources import Source
from onetomany_csv.source import CsvSource

__all__ = ["CsvSource", "onetomany_register_sources"]


@hookimpl
def onetomany_register_sources(register: Register[type[Source]]) -> None:
    register("csv", CsvSource)
