"""The view of ``onetomany sync``: a Rich progress bar per source, with counts and rate."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from onetomany.plugins.syncing import SyncProgress, SyncReport


class _Rate(ProgressColumn):
    """Records per second, over Rich's recent samples."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rec/s" if speed else "- rec/s", style="progress.data.speed")


class SyncView:
    """One bar per source: records stored (of those expected, when the source says), skips,
    pages and rate; a line per source when it ends."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[counts]}"),
            _Rate(),
            TimeElapsedColumn(),
            console=console,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> SyncView:
        self.progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def start(self, source: str) -> None:
        self.tasks[source] = self.progress.add_task(source, total=None, counts="starting")

    def update(self, at: SyncProgress) -> None:
        counts = f"{at.records:,}" + (f"/{at.expected:,}" if at.expected else "")
        counts += f" records, {at.pages:,} page(s)"
        if at.skipped:
            counts += f", [yellow]{at.skipped:,} skipped[/]"
        self.progress.update(
            self.tasks[at.source], completed=at.records, total=at.expected, counts=counts
        )

    def done(self, report: SyncReport) -> None:
        task = self.tasks[report.source]
        self.progress.update(task, total=report.records, completed=report.records)
        self.progress.stop_task(task)
        if report.busy:
            self.progress.console.print(
                f"[yellow]skipped[/] [bold]{report.source}[/]: another worker is syncing it "
                "(it holds the source's lease); nothing read here",
                highlight=False,
            )
            return
        line = (
            f"[green]synced[/] [bold]{report.source}[/]: {report.accounts:,} accounts, "
            f"{report.contacts:,} contacts, {report.events:,} events ({report.new_events:,} new) "
            f"in {report.pages:,} page(s)"
        )
        self.progress.console.print(line, highlight=False)
        skipped = report.skipped + report.skipped_future
        if skipped:
            self.progress.console.print(
                f"  [yellow]{skipped:,} record(s) skipped[/]"
                + (", the cursor stays before the first" if report.cursor_held else ""),
                highlight=False,
            )
            for skip in report.skips:
                self.progress.console.print(f"  - {skip}", highlight=False, markup=False)
            if report.skipped > len(report.skips):
                self.progress.console.print(
                    f"  ... and {report.skipped - len(report.skips):,} more", highlight=False
                )

    def failed(self, source: str, error: Exception) -> None:
        self.progress.stop_task(self.tasks[source])
        self.progress.console.print(
            f"[red]failed[/] [bold]{source}[/]: what was stored before the error stays, "
            "and the next sync resumes after it",
            highlight=False,
        )
        self.progress.console.print(f"  {error}", highlight=False, markup=False)
