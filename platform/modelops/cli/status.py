"""``modelops report``: write the static status site (docs/status-page.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelops.cli.state import STATE


def report(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder to write the site to (default: <state_dir>/site)."),
    ] = None,
    open_: Annotated[
        bool, typer.Option("--open", help="Open the front page in a web browser.")
    ] = False,
    max_runs: Annotated[
        int,
        typer.Option(
            "--max-runs",
            min=1,
            help="Newest monitoring runs per project to include (runs an action names always).",
        ),
    ] = 100,
) -> None:
    """Write one static HTML site: who serves where, the ledger, gate reports, monitoring."""
    from modelops.services import status_page
    from modelops.services.context import prepare_state

    settings = STATE.settings
    prepare_state(settings)
    site = status_page.build(settings, out, max_runs_per_project=max_runs)
    for warning in site.warnings:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    typer.secho(
        f"status page: {site.index} ({len(site.pages)} pages; {site.ledger_entries} ledger "
        f"entries, {site.gate_reports} gate reports, {site.monitoring_runs} monitoring runs, "
        f"{site.monitor_actions} monitor actions, {site.gitops_commits} GitOps commits)",
        fg=typer.colors.GREEN,
    )
    if open_:
        import webbrowser

        if not webbrowser.open(site.index.as_uri()):
            typer.echo(f"no browser found; open {site.index.as_uri()}")
