"""Steps 8-12 of the demo: a healthy week, drift and a retraining, an approval, a bad promotion
and its automatic rollback."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import typer

from modelops.cli.demo.common import DEMO_ACTOR, DEMO_APPROVER, TIMELINE, _step
from modelops.cli.demo.local import _Service, _wait_serving
from modelops.cli.state import STATE
from modelops.core.errors import ModelopsError

if TYPE_CHECKING:
    from modelops.services.monitor import MonitorRun


def _labels_in_time(project: str) -> tuple[bool, str]:
    """Whether labels arrive within the project's probation window (else no monitored
    performance can judge a new version while it is on probation)."""
    from modelops.services.context import project as project_for
    from modelops.services.datasets import read_labels
    from modelops.services.monitor import label_maturity

    settings = STATE.settings
    loaded = project_for(settings, project)
    spec = loaded.spec
    if not spec.label.available_at:
        return False, "labels carry no availability time"
    maturity, source = label_maturity(loaded, read_labels(settings, loaded))
    days = maturity.total_seconds() / 86400
    probation = spec.monitoring.probation_days
    said = f"labels mature after {days:.0f} days ({source}), probation {probation:g} days"
    return days < probation, said


def _monitor(project: str, as_of: datetime) -> MonitorRun:
    from modelops.services import monitor

    run = monitor.run(STATE.settings, project, as_of=as_of, actor=DEMO_ACTOR)
    typer.echo(f"  monitor as of {as_of:%Y-%m-%d %H:%M}: {run.decision.headline()}")
    _estimate_line(run)
    for outcome in run.outcomes:
        typer.echo(f"    {outcome.kind}: {outcome.detail}")
    TIMELINE.mark(f"{project}: monitor run {run.run_id}: {run.decision.headline()}", as_of)
    return run


def _estimate_line(run: MonitorRun) -> None:
    """The run's estimated cost per 1,000 (before labels) against the gate-time cost."""
    est = run.findings.estimated
    if est is None:
        return
    w = est.window
    gate = f"{est.gate_cost_per_1000:,.0f}" if est.gate_cost_per_1000 is not None else "none"
    typer.echo(
        f"  estimated cost {w.cost_per_1000:,.0f} per 1,000 (band {w.cost_per_1000_low:,.0f} .. "
        f"{w.cost_per_1000_high:,.0f}, {w.rows:,} predictions; gate-time {gate}; calibration "
        f"{est.calibration.get('method')} on {est.calibration.get('rows')} holdout rows)"
    )


def estimated_over_time(project: str, days: int = 60) -> None:
    """For a project whose labels arrive too late to judge a version on probation: simulated
    healthy traffic, then covariate drift, and one monitor run each week that estimates the
    cost per 1,000 of the look-back from the calibrated scores, before any label."""
    from modelops.services import simulate

    settings = STATE.settings
    half = max(1, days // 2)
    typer.echo(f"  {project}: estimated performance before labels, {days} simulated days")
    first = simulate.simulate(settings, project, scenario="healthy", days=half, materialize=True)
    second = simulate.simulate(
        settings, project, scenario="covariate-drift", days=days - half, materialize=True
    )
    TIMELINE.mark(f"{project}: covariate drift starts (estimated only)", second.period[0])
    as_of = first.period[0]
    run = None
    while as_of < second.period[1]:
        as_of = min(as_of + timedelta(days=7), second.period[1])
        run = _monitor(project, as_of)
    if run is not None and run.findings.estimated is not None:
        rows = sum(c.rows for c in run.findings.estimated.chunks)
        typer.echo(
            f"  {project}: {len(run.findings.estimated.chunks)} daily chunks ({rows:,} "
            f"predictions) estimated in the last run; summary {run.summary_json}"
        )


def _healthy_week(project: str) -> None:
    from modelops.services import simulate

    healthy = simulate.simulate(
        STATE.settings, project, scenario="healthy", days=7, materialize=True
    )
    typer.echo(
        f"  {healthy.start}..{healthy.end}: {healthy.logged:,} predictions of healthy traffic "
        "logged by the serving code (in process, on the simulated clock)"
    )
    TIMELINE.mark(f"{project}: a week of healthy traffic logged", healthy.period[0])
    run = _monitor(project, healthy.period[1])
    typer.echo(f"  Evidently report: {run.report_html or run.summary_json}")


def _drift_and_retrain(project: str) -> MonitorRun | None:
    """Covariate drift, one monitor run a day, until the monitor retrains (K drifting
    windows in a row); the run that retrained, if any."""
    from modelops.config.project import load_project
    from modelops.core.monitoring import RETRAIN
    from modelops.services import simulate

    settings = STATE.settings
    loaded = load_project(settings.resolved_projects_dir, project)
    monitoring = loaded.spec.monitoring
    days = max(1, math.ceil(monitoring.drift_windows * monitoring.window_hours / 24))
    drifted = simulate.simulate(
        settings, project, scenario="covariate-drift", days=days, materialize=True
    )
    typer.echo(
        f"  {drifted.start}..{drifted.end}: {drifted.logged:,} predictions of covariate-drift "
        "traffic (the generator's covariate-drift scenario, from its first day)"
    )
    TIMELINE.mark(f"{project}: covariate drift starts", drifted.period[0])
    as_of = drifted.period[0]
    while as_of < drifted.period[1]:
        as_of += timedelta(hours=monitoring.window_hours)
        run = _monitor(project, as_of)
        if RETRAIN in run.decision.kinds:
            return run
    return None


def _approve_pending(project: str, run: MonitorRun, service: _Service | None) -> None:
    """The platform team approves the monitor's pending production promotion."""
    from modelops.services import deploy, package, promote

    settings = STATE.settings
    pending = run.pending_promotion
    if not pending:
        typer.echo(f"  {project}: nothing waits for approval; production keeps its version")
        return
    version, environment = str(pending["version"]), str(pending["environment"])
    move = promote.promote(
        settings,
        project,
        version,
        environment,
        approve=True,
        approver=DEMO_APPROVER,
        reason=f"demo: approving the monitor's retrained v{version} (run {run.run_id}), which "
        "passed the gate against production",
    )
    typer.echo(
        f"  {project}: {DEMO_APPROVER} approved; {environment} v{move.from_version} -> "
        f"v{move.to_version} (ledger entry {move.entry.seq})"
    )
    # a deploy writes the signed release the ledger recorded: package it first (the local
    # service's reload then reuses the Bento)
    packaged = package.package(settings, project, version, environment=environment)
    typer.echo(f"  {project} v{version}: Bento {packaged.bento_tag} signed and recorded")
    result = deploy.deploy(settings, project, environment, actor=DEMO_ACTOR)
    said = "already deployed" if result.commit is None else f"commit {result.commit[:12]}"
    typer.echo(f"  {result.values_path}: {said}")
    TIMELINE.mark(f"{project}: v{version} approved and promoted to {environment}; GitOps {said}")
    if service is not None:
        _report_reload(service, version, move.entry.at)


def _report_reload(service: _Service, version: str, since: datetime) -> None:
    seconds = _wait_serving(service, version, since)
    if seconds is None:
        typer.secho(
            f"  {service.project}: the service did not report v{version} within 120 s; see "
            f"{service.log_file}",
            fg=typer.colors.RED,
        )
        return
    typer.echo(
        f"  {service.project}: the local service serves v{version} ({seconds:.1f} s after the "
        "promotion)"
    )
    TIMELINE.mark(f"{service.project}: local service reloaded, serving v{version}")


def _bad_promotion(project: str, service: _Service | None) -> bool:
    """The bad-model drill: a version trained with a feature broken (the project's
    ``DRILL_BROKEN_FEATURES``, capped at ``DRILL_BROKEN_CAP`` when set), through the gate and
    an approval that say so, then concept-drift traffic long enough for its labels to mature
    within probation."""
    from modelops.config.project import load_project
    from modelops.services import simulate
    from modelops.services.context import ledger as ledger_for

    settings = STATE.settings
    loaded = load_project(settings.resolved_projects_dir, project)
    monitoring = loaded.spec.monitoring
    event = loaded.spec.label.event_name
    days = max(7, math.ceil(monitoring.probation_days * 0.8))
    try:
        drill = simulate.simulate(
            settings,
            project,
            scenario="bad-model",
            days=days,
            drill_traffic="concept-drift",
            approver=DEMO_APPROVER,
            actor=DEMO_ACTOR,
            materialize=True,
        )
    except simulate.DrillRefusedError as exc:
        typer.secho(f"  {project}: the drill was refused: {exc}", fg=typer.colors.YELLOW)
        return False
    assert drill.drill is not None
    d = drill.drill
    typer.echo(
        f"  {project}: v{d.bad_version} promoted over v{d.previous_version} through the gate "
        f"({', '.join(f'{env}: verdict {v}' for env, v in d.verdicts.items())}), approved by "
        f'{d.approver}: "{d.reason}"'
    )
    if d.broken:
        typer.echo(
            f"  what is wrong with it: trained with {', '.join(d.broken)} broken ({d.broken_how} "
            "in the rows it learned from, as a faulty upstream job would); on the holdout the "
            "other features carry most of that signal, so the gate found it non-inferior; the "
            "drill traffic that follows (bad actors mimicking their victims) needs it"
        )
    typer.echo(f"  GitOps: {d.gitops}")
    TIMELINE.mark(
        f"{project}: bad promotion: v{d.bad_version} to production (approved, reason recorded)",
        drill.period[0],
    )
    if service is not None:
        moved = ledger_for(settings).entries(project, "production")
        at = next(e.at for e in moved if e.seq == d.moves["production"])
        _report_reload(service, d.bad_version, at)
    typer.echo(
        f"  {drill.start}..{drill.end}: {drill.logged:,} predictions of concept-drift traffic "
        f"({drill.positives} {event}, whose inputs no longer give them away); labels "
        f"known {drill.labels_known_from:%Y-%m-%d} .. {drill.labels_known_until:%Y-%m-%d}"
    )
    TIMELINE.mark(f"{project}: concept drift: {drill.logged:,} predictions", drill.period[0])
    return True


def _automatic_rollback(project: str, service: _Service | None) -> None:
    from modelops.cli.simulate import _print_reaction
    from modelops.services import simulate

    reaction = simulate.measure_reaction(
        STATE.settings,
        project,
        service_url=service.base if service else None,
        actor=DEMO_ACTOR,
    )
    _print_reaction(reaction)
    for run_id, as_of, headline in reaction.runs:
        TIMELINE.mark(f"{project}: monitor run {run_id}: {headline}", as_of)
    if reaction.run_id is None:
        raise ModelopsError(f"{project}: no monitor run rolled the bad promotion back")
    total = reaction.total_s
    TIMELINE.mark(
        f"{project}: automatic rollback v{reaction.bad_version} -> v{reaction.previous_version}"
        f" serving again {total:.1f} s after the run started (target {reaction.target_s:g} s)"
        if total is not None
        else f"{project}: automatic rollback to v{reaction.previous_version} (not timed)",
        reaction.as_of,
    )


def _monitoring_story(monitored: list[str], services: dict[str, _Service]) -> None:
    """Steps 8-12 for each project whose labels arrive within its probation."""
    _step(
        "8. production traffic: a healthy week, then Evidently drift, data quality and "
        "performance against the version's training data"
    )
    if not monitored:
        typer.echo("  no project's labels arrive within its probation: nothing to monitor")
        return
    for project in monitored:
        _healthy_week(project)
    retrained: dict[str, MonitorRun | None] = {}
    _step(
        "9. drift: covariate drift until the monitor retrains; its candidate goes through the gate"
    )
    for project in monitored:
        retrained[project] = _drift_and_retrain(project)
        if retrained[project] is None:
            typer.secho(f"  {project}: the monitor did not retrain", fg=typer.colors.YELLOW)
    _step("10. promote: the platform team approves the retrained version for production")
    for project in monitored:
        run = retrained[project]
        if run is not None:
            _approve_pending(project, run, services.get(project))
    _step("11. a bad promotion: a version through the gate and an approval, then concept drift")
    drilled = [p for p in monitored if _bad_promotion(p, services.get(p))]
    _step("12. degradation and automatic rollback: monitor runs until the labels show it")
    for project in drilled:
        _automatic_rollback(project, services.get(project))
