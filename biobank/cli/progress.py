"""Progress bars for long CLI work (imports, exports, backup and restore): rows or bytes done, the rate and the time
left, drawn on stderr with rich (which Typer brings) so that stdout keeps only the command's answer.

Quiet, drawing nothing, when stderr is not a terminal (a pipe, a log file, cron, a test's runner) or with
``--quiet``. A command opens one :class:`Bar` and hands its callbacks to the library::

    with Bar(quiet=quiet) as bar:
        report = run_import(..., progress=bar.phases({"validate": "checking rows", "write": "writing rows"}))

The library never imports this module: it takes plain callbacks (``advance(n)``, or ``progress(phase, n, total)``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

ROWS = "rows"
BYTES = "bytes"


class _Rate(ProgressColumn):
    """``12,345 rows/s`` (bytes have rich's own transfer-speed column)."""

    def render(self, task: Task) -> Text:
        if task.fields.get("unit") == BYTES:
            return TransferSpeedColumn().render(task)
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("", style="progress.data.speed")
        return Text(f"{speed:,.0f} {task.fields.get('unit', ROWS)}/s", style="progress.data.speed")


class _Done(ProgressColumn):
    """``1,200/5,000 rows``, ``1,200 rows`` while the total is unknown, or bytes as ``1.2/5.0 MB``."""

    def render(self, task: Task) -> Text:
        if task.fields.get("unit") == BYTES:
            return DownloadColumn().render(task)
        unit = task.fields.get("unit", ROWS)
        if task.total is None:
            return Text(f"{int(task.completed):,} {unit}", style="progress.download")
        return Text(f"{int(task.completed):,}/{int(task.total):,} {unit}", style="progress.download")


def is_terminal(console: Console | None = None) -> bool:
    """Whether a bar would be seen: stderr (or ``console``) is a terminal."""
    return (console or Console(stderr=True)).is_terminal


class Bar:
    """One progress display of a command, with a task (a bar) per step. Quiet unless on a terminal and not
    ``quiet``; a quiet bar's callbacks do nothing. ``console`` is for tests (a fake terminal)."""

    def __init__(self, *, quiet: bool = False, console: Console | None = None) -> None:
        console = console or Console(stderr=True)
        self.active = not quiet and console.is_terminal
        self._progress: Progress | None = None
        if self.active:
            self._progress = Progress(
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                _Done(),
                _Rate(),
                TimeRemainingColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=False,
                refresh_per_second=8,
            )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> Bar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def task(self, description: str, *, total: int | None = None, unit: str = ROWS) -> Callable[[int], None]:
        """A new bar; returns ``advance(n)``."""
        if self._progress is None:
            return _nothing
        progress = self._progress
        task_id = progress.add_task(description, total=total, unit=unit)
        self._tasks[description] = task_id

        def advance(n: int) -> None:
            progress.advance(task_id, n)

        return advance

    def phases(self, labels: Mapping[str, str], *, unit: str = ROWS) -> Callable[[str, int, int | None], None]:
        """A ``progress(phase, advance, total)`` callback (the import engine's): one bar per phase, labelled by
        ``labels`` (the phase's own name otherwise), its total set when the phase tells it."""
        if self._progress is None:
            return _nothing_phase
        progress = self._progress
        ids: dict[str, TaskID] = {}

        def report(phase: str, advance: int, total: int | None) -> None:
            task_id = ids.get(phase)
            if task_id is None:
                task_id = ids[phase] = progress.add_task(labels.get(phase, phase), total=total, unit=unit)
            elif total is not None:
                progress.update(task_id, total=total)
            progress.advance(task_id, advance)

        return report

    def bytes_of(self, description: str) -> Callable[[int, int | None], None]:
        """A ``progress(done_bytes, total_bytes)`` callback (backup and restore): one bar of bytes, moved to what is
        done (not advanced by it)."""
        if self._progress is None:
            return _nothing_bytes
        progress = self._progress
        task_id = progress.add_task(description, total=None, unit=BYTES)

        def report(done: int, total: int | None) -> None:
            progress.update(task_id, completed=done, total=total)

        return report

    def finish(self, description: str) -> None:
        """Mark the bar ``description`` complete (its total becomes what was done)."""
        if self._progress is None or description not in self._tasks:
            return
        task_id = self._tasks[description]
        done = self._progress.tasks[task_id].completed
        self._progress.update(task_id, total=done, completed=done)


def _nothing(_n: int) -> None:
    return None


def _nothing_bytes(_done: int, _total: int | None) -> None:
    return None


def _nothing_phase(_phase: str, _n: int, _total: int | None) -> None:
    return None


#: The ``--quiet`` option of the commands that show progress.
QuietOption = Annotated[bool, typer.Option("--quiet", help="No progress bar (none is drawn off a terminal either).")]

__all__ = ["BYTES", "ROWS", "Bar", "QuietOption", "is_terminal"]
