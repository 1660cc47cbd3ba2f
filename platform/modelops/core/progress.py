"""Progress of long steps: a service names the stage it runs and on how many rows; whoever runs
the service (the CLI, on a terminal) decides whether and how to show it.

Nothing is shown, and nothing is imported, unless a :class:`Reporter` is installed with
:func:`reporting`: services call :func:`stage` unconditionally, and without a reporter it only
reads a context variable. Pure: no output here, the reporter owns it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol


class Reporter(Protocol):
    """Receives the stages of the steps run while it is installed."""

    def started(self, stage: str, rows: int | None) -> None: ...

    def finished(self, stage: str, rows: int | None, seconds: float, ok: bool) -> None: ...


_REPORTER: ContextVar[Reporter | None] = ContextVar("modelops_progress", default=None)


@dataclass
class Stage:
    """A running stage; set :attr:`rows` when the count is known only once it ran."""

    name: str
    rows: int | None = None
    started_at: float = field(default_factory=time.perf_counter)


@contextmanager
def reporting(reporter: Reporter | None) -> Iterator[None]:
    """Install ``reporter`` for the steps run inside (None: show nothing)."""
    token = _REPORTER.set(reporter)
    try:
        yield
    finally:
        _REPORTER.reset(token)


@contextmanager
def stage(name: str, rows: int | None = None) -> Iterator[Stage]:
    """Run a stage: the installed reporter hears it start, and finish with its rows and elapsed
    seconds (``ok`` False when it raised; the error itself propagates unchanged)."""
    reporter = _REPORTER.get()
    current = Stage(name, rows)
    if reporter is None:
        yield current
        return
    reporter.started(name, rows)
    ok = False
    try:
        yield current
        ok = True
    finally:
        reporter.finished(name, current.rows, time.perf_counter() - current.started_at, ok)
