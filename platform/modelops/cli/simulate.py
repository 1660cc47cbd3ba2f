"""``modelops simulate``: production traffic and delayed labels from a project's data.py."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from modelops.cli.state import STATE

if TYPE_CHECKING:
    from modelops.services.simulate import Reaction, SimulationResult


def _print(result: SimulationResult) -> None:
    where = (
        f"through {result.through_service}"
        if result.through_service
        else f"in process, v{', v'.join(result.served_versions) or '?'}"
    )
    traffic = (
        f"{result.scenario} ({result.traffic} traffic)"
        if result.traffic != result.scenario
        else result.scenario
    )
    typer.echo(
        f"{result.project} {result.environment}: {traffic}, {result.start} to {result.end} "
        f"({result.events:,} events, {result.rate:.4g}/day, seed {result.seed}; {where}; "
        f"{result.seconds:.1f} s)"
    )
    if result.drift_start:
        typer.echo(f"  drift from {result.drift_start}")
    drill = result.drill
    if drill is not None:
        trained = " (trained for the drill)" if drill.trained else ""
        if drill.broken:
            trained = f" (trained for the drill with {', '.join(drill.broken)} broken)"
        typer.secho(
            f"  drill: v{drill.bad_version}{trained} now holds {result.environment} instead of "
            f"v{drill.previous_version}, approved by {drill.approver}",
            fg=typer.colors.YELLOW,
        )
        for env, verdict in drill.verdicts.items():
            typer.echo(f"    {env}: verdict {verdict} passed; ledger entry {drill.moves[env]}")
        typer.echo(f"    reason: {drill.reason}")
        typer.echo(f"    {drill.gitops}")
    typer.echo(
        f"  logged {result.logged:,} predictions ({result.fallbacks:,} fallbacks, "
        f"{result.refused:,} not scored) to {result.prediction_log}"
    )
    if result.shadow_version:
        typer.echo(f"  shadow v{result.shadow_version} scored beside every prediction")
    known = ""
    if result.labels_known_from and result.labels_known_until:
        known = (
            f", known from {result.labels_known_from:%Y-%m-%d %H:%M} to "
            f"{result.labels_known_until:%Y-%m-%d %H:%M} UTC"
        )
    typer.echo(f"  labels: {result.labels:,} ({result.positives:,} positive){known}")
    typer.echo(f"    -> {result.label_table}")
    for path in result.feature_tables:
        typer.echo(f"  features -> {path}")
    for note in result.notes:
        typer.echo(f"  note: {note}")


def _print_reaction(reaction: Reaction) -> None:
    for run_id, as_of, headline in reaction.runs:
        typer.echo(f"  monitor run {run_id} as of {as_of:%Y-%m-%d %H:%M}: {headline}")
    if reaction.run_id is None:
        typer.secho("reaction: no monitor run rolled back", fg=typer.colors.RED)
    else:
        typer.echo(
            f"reaction of run {reaction.run_id} (v{reaction.bad_version} -> "
            f"v{reaction.previous_version}), seconds from the run's start:"
        )
        for step, seconds in reaction.steps.items():
            shown = "not measured" if seconds is None else f"{seconds:.2f} s"
            typer.echo(f"  {step:<17} {shown}")
        total = reaction.total_s
        colour = typer.colors.GREEN if reaction.within_target else typer.colors.RED
        shown = "n/a" if total is None else f"{total:.2f} s"
        typer.secho(f"  total             {shown} (target {reaction.target_s:g} s)", fg=colour)
    for note in reaction.notes:
        typer.echo(f"  note: {note}")


# The options of `simulate`, named once so that the command reads as its steps.
_Project = Annotated[str, typer.Argument(help="Project name (it needs a data.py).")]
_Scenario = Annotated[
    str,
    typer.Option(help="healthy, covariate-drift, concept-drift or bad-model."),
]
_Days = Annotated[int, typer.Option(min=1, max=366, help="Days of traffic.")]
_Start = Annotated[
    datetime | None,
    typer.Option(
        formats=["%Y-%m-%d"],
        help="First day (default: the day after the holdout and the label table's last "
        "event; through a service: --days before today).",
    ),
]
_Rate = Annotated[
    float | None,
    typer.Option(min=0.001, help="Events a day (default: that of the example data)."),
]
_ThroughService = Annotated[
    str | None,
    typer.Option(help="Base URL of a running service: POST /predict_batch there; it logs itself."),
]
_Seed = Annotated[int, typer.Option(min=0, help="Generator seed.")]
_Env = Annotated[str, typer.Option("--env", help="Environment whose traffic it is.")]
_Shadow = Annotated[
    str | None, typer.Option(help="In process: also score with this version (logged only).")
]
_BadVersion = Annotated[
    str | None,
    typer.Option(help="bad-model: the version to promote (default: train a new one)."),
]
_DrillTraffic = Annotated[
    str, typer.Option(help="bad-model: the scenario of the traffic after the promotion.")
]
_BreakFeature = Annotated[
    list[str] | None,
    typer.Option(
        "--break-feature",
        help="bad-model (drill only): train the drill's version with this feature written "
        "as 0 in the rows it learns from; repeatable (default: DRILL_BROKEN_FEATURES in the "
        "project's data.py).",
    ),
]
_Approver = Annotated[
    str | None,
    typer.Option(help="bad-model: who approves the promotion (default modelops-simulate)."),
]
_Materialize = Annotated[
    bool | None,
    typer.Option(
        "--materialize/--no-materialize",
        help="Load the period's feature rows into the online store (default: only "
        "--through-service, before sending).",
    ),
]
_MeasureReaction = Annotated[
    bool,
    typer.Option(
        "--measure-reaction",
        help="bad-model: then run the monitor until it rolls back and time each step.",
    ),
]
_ServiceUrl = Annotated[
    str | None,
    typer.Option(
        help="With --measure-reaction: a local service to watch until it serves the "
        "previous version (default: --through-service)."
    ),
]


def simulate(
    project: _Project,
    scenario: _Scenario = "healthy",
    days: _Days = 7,
    start: _Start = None,
    rate: _Rate = None,
    through_service: _ThroughService = None,
    seed: _Seed = 42,
    env: _Env = ("production"),
    shadow: _Shadow = None,
    bad_version: _BadVersion = None,
    drill_traffic: _DrillTraffic = "concept-drift",
    break_feature: _BreakFeature = None,
    approver: _Approver = None,
    materialize: _Materialize = None,
    measure_reaction: _MeasureReaction = False,
    service_url: _ServiceUrl = None,
) -> None:
    """Simulate a period of production traffic and its delayed labels from the project's
    data.py scenarios, in process or through a running service, so that 'modelops monitor
    --as-of' replays the whole loop offline. bad-model promotes, through the gate and with an
    approval saying so, a version that degrades on the traffic that follows.
    """
    from modelops.core.errors import ModelopsError
    from modelops.services import simulate as service

    if measure_reaction and scenario != service.BAD_MODEL:
        raise ModelopsError("--measure-reaction times a rollback: use it with --scenario bad-model")
    settings = STATE.settings
    result = service.simulate(
        settings,
        project,
        scenario=scenario,
        days=days,
        start=None if start is None else start.date(),
        rate=rate,
        seed=seed,
        environment=env,
        through_service=through_service,
        shadow=shadow,
        bad_version=bad_version,
        drill_traffic=drill_traffic,
        break_features=tuple(break_feature or ()),
        approver=approver,
        materialize=materialize,
    )
    _print(result)
    if measure_reaction:
        reaction = service.measure_reaction(
            settings,
            project,
            environment=env,
            service_url=service_url or through_service,
        )
        _print_reaction(reaction)
