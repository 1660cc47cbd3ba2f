"""``modelops data``: seeded example data from the projects' own generators (``data.py``)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

import typer

from modelops.cli.state import STATE, echo_table

app = typer.Typer(
    help="Example data from projects that have a data.py generator.", no_args_is_help=True
)


class Scenario(StrEnum):
    healthy = "healthy"
    covariate_drift = "covariate-drift"
    concept_drift = "concept-drift"


def _day(value: datetime | None) -> date | None:
    return value.date() if value else None


@app.command()
def generate(
    project: Annotated[
        list[str] | None,
        typer.Option(
            "--project",
            "-p",
            help="A project with a data.py; repeat for several. Default: every such project.",
        ),
    ] = None,
    start: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="First day of events.")
    ] = None,
    end: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Last day of events.")
    ] = None,
    rows: Annotated[
        int | None, typer.Option(min=1, help="Rows of the label table (default: the project's).")
    ] = None,
    scenario: Annotated[Scenario, typer.Option(help="Drift to inject.")] = Scenario.healthy,
    drift_start: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Day the drift begins.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Same seed, same data.")] = 42,
) -> None:
    """Write seeded event and label tables to the feature repo's data/ folder.

    Each projects/<name>/data.py writes its project's tables; a project without one brings its own.
    """
    from modelops.services import data as data_service

    summaries = data_service.generate(
        STATE.settings,
        project or None,
        start=_day(start),
        end=_day(end),
        rows=rows,
        scenario=scenario.value,
        seed=seed,
        drift_start=_day(drift_start),
    )
    echo_table(
        ["project", "table", "rows", "from", "to"],
        [
            [s.project, t.name, f"{t.rows:,}", f"{t.start:%Y-%m-%d}", f"{t.end:%Y-%m-%d}"]
            for s in summaries
            for t in s.tables
        ],
    )
    for s in summaries:
        typer.echo(f"{s.project}: {s.scenario}, seed {s.seed}, positive rate {s.positive_rate:.2%}")
