"""``modelops features``: the Feast feature repository."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from modelops.cli.state import JSON_HELP, STATE, echo_json, echo_table

app = typer.Typer(help="Feature definitions, materialization and services.", no_args_is_help=True)


@app.command()
def apply() -> None:
    """Register the feature repo's definitions (feast apply)."""
    from modelops.services import features as service

    applied = service.apply(STATE.settings)
    typer.echo(f"applied {len(applied)} objects: " + ", ".join(applied))


@app.command()
def materialize(
    end: Annotated[
        datetime | None,
        typer.Option(help="Load feature values up to this time (UTC). Default: now."),
    ] = None,
) -> None:
    """Load new feature values into the online store, resuming where the last run ended."""
    from modelops.services import features as service

    end_at = (end or datetime.now(UTC)).replace(tzinfo=(end.tzinfo if end else UTC) or UTC)
    views = service.materialize(STATE.settings, end_at)
    if not views:
        typer.echo(f"online store already up to date as of {end_at:%Y-%m-%d %H:%M}")
    for view in views:
        typer.echo(
            f"materialized {view.name}: {view.start:%Y-%m-%d %H:%M} .. {view.end:%Y-%m-%d %H:%M}"
        )


@app.command("list")
def list_services(
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Feature services: the training/serving contract of each model."""
    from modelops.services import features as service

    services = service.list_services(STATE.settings)
    if as_json:
        echo_json(
            {
                "feature_services": [
                    {
                        "name": s.name,
                        "description": s.description or None,
                        "feature_views": list(s.feature_views),
                        "features": list(s.features),
                        "request_fields": list(s.request_fields),
                    }
                    for s in services
                ]
            }
        )
        return
    echo_table(
        ["feature service", "features", "request fields"],
        [[s.name, ", ".join(s.features), ", ".join(s.request_fields) or "-"] for s in services],
    )
