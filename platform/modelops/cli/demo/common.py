"""What every chapter of the demo shares: who acts, the step headings and the timeline."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    pass


DEMO_ACTOR = "demo-ci"  # runs the gates, as a CI job would
DEMO_APPROVER = "demo-platform-team"  # approves production: never who trained or validated
DEMO_REQUESTS = 300  # single-entity requests sent to each local service


def _step(text: str) -> None:
    typer.secho(f"\n== [{datetime.now(UTC):%H:%M:%S} {TIMELINE.elapsed()}] {text}", bold=True)


class _Timeline:
    """What happened when: wall clock, seconds since the demo started, simulated time."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.started = datetime.now(UTC)
        self.events: list[tuple[datetime, datetime | None, str]] = []

    def elapsed(self, at: datetime | None = None) -> str:
        seconds = ((at or datetime.now(UTC)) - self.started).total_seconds()
        return f"+{int(seconds // 60)}:{int(seconds % 60):02d}"

    def mark(self, text: str, simulated: datetime | date | None = None) -> None:
        moment = simulated
        if isinstance(moment, date) and not isinstance(moment, datetime):
            moment = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
        self.events.append((datetime.now(UTC), moment, text))

    def echo(self) -> None:
        for at, simulated, text in self.events:
            sim = f"{simulated:%Y-%m-%d %H:%M}" if simulated else " " * 16
            typer.echo(f"  {at:%H:%M:%S} {self.elapsed(at)}  {sim}  {text}")


TIMELINE = _Timeline()
