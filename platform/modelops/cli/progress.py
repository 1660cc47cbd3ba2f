"""Live progress of long commands (train, validate and their joins) on a terminal.

Each stage a service reports (:mod:`modelops.core.progress`) is a line with a spinner, its rows
and the elapsed time; a finished stage keeps its line with the time it took. Off a terminal (CI
logs, pipes, tests) nothing is shown, and rich's progress module is not even imported.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from modelops.core import progress

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


def _rows(rows: int | None) -> str:
    return f"{rows:,} rows" if rows is not None else ""


class RichReporter:
    """Stages as rich progress tasks: spinner, stage, rows, elapsed."""

    def __init__(self, bar: Progress) -> None:
        self._bar = bar
        self._tasks: dict[str, TaskID] = {}

    def started(self, stage: str, rows: int | None) -> None:
        self._tasks[stage] = self._bar.add_task(stage, total=None, rows=_rows(rows))

    def finished(self, stage: str, rows: int | None, seconds: float, ok: bool) -> None:
        task = self._tasks.pop(stage, None)
        if task is None:
            return
        mark = "done" if ok else "failed"
        self._bar.update(
            task,
            description=f"{stage}: {mark} in {seconds:,.1f}s",
            rows=_rows(rows),
            total=1,
            completed=1,
        )
        self._bar.stop_task(task)


def _terminal(stream: IO[Any]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


@contextmanager
def shown(stream: IO[Any] | None = None) -> Iterator[None]:
    """Show the stages run inside on ``stream`` (default stderr) when it is a terminal."""
    out = stream if stream is not None else sys.stderr
    if not _terminal(out):
        yield
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(file=out, highlight=False, markup=False, emoji=False)
    with (
        Progress(
            SpinnerColumn(finished_text="·"),
            TextColumn("{task.description}", markup=False),
            TextColumn("{task.fields[rows]}", markup=False),
            TimeElapsedColumn(),
            console=console,
        ) as bar,
        progress.reporting(RichReporter(bar)),
    ):
        yield
