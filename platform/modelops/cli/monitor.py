"""``modelops monitor``: watch a project's serving version and act on what is seen."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelops.cli.state import STATE
from modelops.core.errors import ModelopsError

if TYPE_CHECKING:
    from modelops.services.monitor import MonitorRun


def _print(run: MonitorRun) -> None:
    decision = run.decision
    what = "dry run: " if run.dry_run else ""
    typer.echo(
        f"{run.project} {run.environment} v{run.version}: monitoring run {run.run_id} "
        f"({run.findings.quality.rows:,} predictions, {run.window[0]:%Y-%m-%d %H:%M} to "
        f"{run.window[1]:%Y-%m-%d %H:%M} UTC, {run.seconds:.1f} s)"
    )
    colour = typer.colors.GREEN if not decision.actions else typer.colors.YELLOW
    typer.secho(f"{what}{decision.headline()}", fg=colour)
    for held in decision.held:
        typer.echo(f"  held {held.action.kind}: {held.why}")
    for note in (*decision.notes, *run.notes):
        typer.echo(f"  note: {note}")
    for outcome in run.outcomes:
        mark = "done" if outcome.done else "not done"
        entry = f" (ledger entry {outcome.ledger_seq})" if outcome.ledger_seq else ""
        typer.echo(f"  {outcome.kind}: {mark}: {outcome.detail}{entry}")
    typer.echo(f"report: {run.report_html or 'none (no predictions in the window)'}")
    if run.performance_html:
        typer.echo(f"performance: {run.performance_html}")
    typer.echo(f"summary: {run.summary_json}")


def monitor(
    project: Annotated[str, typer.Argument(help="Project name.")],
    env: Annotated[str, typer.Option("--env", help="Environment to watch.")] = "production",
    once: Annotated[bool, typer.Option("--once", help="One run, then exit (the default).")] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="Run every --interval seconds until interrupted.")
    ] = False,
    interval: Annotated[
        float, typer.Option(help="Seconds between the starts of two runs with --watch.", min=1)
    ] = 3600.0,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Decide and write the report; record, move and train nothing.",
        ),
    ] = False,
    as_of: Annotated[
        datetime | None,
        typer.Option(
            help="End of the window, and when labels must be known by (UTC; default now): "
            "replays simulated traffic.",
        ),
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Name the actions are recorded under.")] = None,
    push: Annotated[
        bool, typer.Option("--push", help="Push the GitOps commits of moves to the remote.")
    ] = False,
    textfile_dir: Annotated[
        Path | None,
        typer.Option(help="Prometheus textfile directory (default <state_dir>/prometheus)."),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option(help="Also write the run's summary.json here.")
    ] = None,
) -> None:
    """Watch an environment's version: drift, data quality, live performance; act on them.

    Compares the logged traffic with the version's training data, judges it on the labels known
    so far, and rolls back, retrains or alerts as project.yaml's monitoring section says.

    Exit code 0 when the run completed (whatever it decided); 2 when it could not run; 3 when
    a move happened but its MLflow alias lags (run 'modelops models sync').
    """
    from modelops.services import monitor as service

    if once and watch:
        raise ModelopsError("--once and --watch exclude each other")
    if as_of is not None and watch:
        raise ModelopsError("--as-of replays one window: use it with --once")
    settings = STATE.settings
    when = None if as_of is None else (as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC))
    if not watch:
        run = service.run(
            settings,
            project,
            environment=env,
            as_of=when,
            dry_run=dry_run,
            actor=actor,
            push=push,
            textfile_dir=textfile_dir,
        )
        _print(run)
        if json_out:
            json_out.write_text(run.summary_json.read_text())
        if run.exit_code:
            raise typer.Exit(run.exit_code)
        return
    for result in service.watch(
        settings,
        project,
        interval=interval,
        environment=env,
        dry_run=dry_run,
        actor=actor,
        push=push,
        textfile_dir=textfile_dir,
    ):
        if isinstance(result, ModelopsError):
            typer.secho(f"error: {result}", fg=typer.colors.RED, err=True)
            continue
        _print(result)
        if json_out:
            json_out.write_text(json.dumps(json.loads(result.summary_json.read_text()), indent=2))
