"""``modelops demo``: the whole lifecycle that exists so far, on embedded defaults.

data -> features -> train v1 -> gate -> promote -> package -> GitOps deploy -> serve -> traffic ->
drift -> retrain v2 -> gate -> promote -> a bad promotion -> degradation -> automatic rollback ->
status page, with a timeline of wall-clock and simulated times.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelops.cli.state import STATE, echo_table
from modelops.core.errors import ModelopsError

if TYPE_CHECKING:
    from modelops.services.monitor import MonitorRun

DEMO_ACTOR = "demo-ci"  # runs the gates, as a CI job would
DEMO_APPROVER = "demo-platform-team"  # approves production: never who trained or validated
DEMO_REQUESTS = 300  # single-entity requests sent to each local service


def _step(text: str) -> None:
    typer.secho(f"\n== [{datetime.now(UTC):%H:%M:%S} {TIMELINE.elapsed()}] {text}", bold=True)


def _walk_to_production(project: str, version: str, reason: str) -> bool:
    """Gate and promote through every environment (the platform's one promotion path); False at
    the first failed gate."""
    from modelops.services.workflows import promotion

    settings = STATE.settings

    def said_gate(step: promotion.GateStep) -> None:
        verdict = step.verdict
        reference = (
            "the prevalence-only reference"
            if verdict.reference.version == "-"
            else f"{verdict.reference.role} v{verdict.reference.version}"
        )
        status = "passed" if step.passed else "FAILED"
        typer.echo(f"  gate v{version} vs {reference} ({step.environment}): {status}")
        if not step.passed:
            typer.echo(f"    failed: {'; '.join(verdict.failed_rules)}")

    result = promotion.walk(
        settings,
        project,
        promotion.WalkOptions(
            target=settings.environments[-1],
            candidates=[version],
            reason=lambda *_: reason,
            actor=DEMO_ACTOR,
            approver=DEMO_APPROVER,
            on_gate=said_gate,
            on_move=lambda m: typer.echo(f"  {m.environment} now serves v{m.version}"),
        ),
    )
    return result.reached


def _package_production(projects: list[str]) -> list[str]:
    """Package each project's production holder; the projects that have one."""
    from modelops.services import package, promote

    settings = STATE.settings
    done = []
    for project in projects:
        holder = promote.holders(settings, project).get("production")
        if not holder:
            typer.echo(f"  {project}: nothing holds production; nothing to package")
            continue
        result = package.package(settings, project, holder, environment="production")
        skew = result.skew.report
        typer.echo(
            f"  {project} v{holder}: Bento {result.bento_tag} (skew: {skew.mismatched_entities} "
            f"of {skew.entities} entities differ online; {result.scorer.detail})"
        )
        done.append(project)
    return done


def _deploy(project: str) -> None:
    from modelops.services import deploy, promote

    settings = STATE.settings
    for environment, holder in promote.holders(settings, project).items():
        if not holder or environment == settings.environments[0]:
            continue
        result = deploy.deploy(settings, project, environment, actor=DEMO_ACTOR)
        subject = result.message.splitlines()[0] if result.message else ""
        said = "already deployed" if result.commit is None else f"commit {result.commit[:12]}"
        typer.echo(f"  {result.values_path}: {said}  {subject}")


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


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class _Service:
    project: str
    base: str
    process: subprocess.Popen[bytes]
    log_file: Path


def _start_service(project: str) -> _Service:
    """``modelops serve <project> --env production --reload-on-promotion``, as a user runs it:
    it swaps in each new production holder (a promotion, a rollback) without a restart."""
    from modelops.services import traffic

    settings = STATE.settings
    port = _free_port()
    log_file = settings.resolved_state_dir / "serving" / f"{project}-production.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "modelops",
        "serve",
        project,
        "--env",
        "production",
        "--port",
        str(port),
        "--reload-on-promotion",
        "--poll-seconds",
        "1",
    ]
    with log_file.open("ab") as server_log:
        process = subprocess.Popen(
            command, stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    service = _Service(project, base, process, log_file)
    try:
        ready = traffic.wait_ready(base, timeout=240, process=process)
    except BaseException:
        _stop_service(service)
        raise
    typer.echo(f"  {project}: {' '.join(command[-9:])} ready at {base} in {ready:.1f} s")
    typer.echo(f"  {project}: server output in {log_file}")
    return service


def _stop_service(service: _Service) -> None:
    """SIGINT first: the CLI then stops the server it started in a process group of its own."""
    import signal

    from modelops.services import package

    package.stop_server(service.process, timeout=30, first=signal.SIGINT)


def _send(service: _Service, requests: int) -> None:
    """Send ``requests`` single-entity requests to a running service and print what came back."""
    from modelops.services import traffic

    settings = STATE.settings
    bodies = traffic.request_bodies(settings, service.project, requests)
    result = traffic.send(service.base, bodies, concurrency=8)
    version = _serving_version(service)
    typer.echo(
        f"  {service.project} v{version}: {result.sent} requests, {result.failed} failed, p50 "
        f"{result.percentile(50):.1f} ms, p99 {result.percentile(99):.1f} ms, "
        f"{result.per_second:.0f} req/s at concurrency 8"
    )
    for body, answer in result.samples:
        typer.echo(
            f"    {json.dumps(body)} -> score {answer.get('score')}, decision "
            f"{answer.get('decision')}, v{answer.get('model_version')}"
        )
    for error in result.errors:
        typer.secho(f"    {error}", fg=typer.colors.RED)
    TIMELINE.mark(f"{service.project}: {result.sent} requests served by v{version}")


def _serving_version(service: _Service) -> str | None:
    from modelops.services import simulate

    return simulate.service_version(service.base)


def _wait_serving(
    service: _Service, version: str, since: datetime, timeout: float = 120.0
) -> float | None:
    """Seconds from ``since`` (the promotion) until the service reports ``version`` (None: it
    did not within ``timeout``)."""
    from modelops.services import traffic

    try:
        served = traffic.wait_serving(service.base, version, timeout, service.process)
    except traffic.ServiceExitedError as exc:
        raise ModelopsError(
            f"the {service.project} service exited (code {exc.code}); see {service.log_file}"
        ) from exc
    return (datetime.now(UTC) - since).total_seconds() if served else None


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
    for outcome in run.outcomes:
        typer.echo(f"    {outcome.kind}: {outcome.detail}")
    TIMELINE.mark(f"{project}: monitor run {run.run_id}: {run.decision.headline()}", as_of)
    return run


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
    from modelops.services import deploy, promote

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
    """The bad-model drill: a version through the gate and an approval that say so, then
    concept-drift traffic long enough for its labels to mature within probation."""
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


def demo(
    rows: Annotated[
        int | None, typer.Option(help="Labelled events per project (default: generator's).")
    ] = None,
) -> None:
    """The whole lifecycle: data to production, serving, then drift, a monitor-driven retraining,
    a bad promotion and its automatic rollback, with a timeline and the status page.

    Every project under the projects folder that has a data.py (an example-data generator) goes
    to production and is served; the monitoring story (steps 8-12) runs for the projects whose
    labels arrive within their probation window.
    """
    TIMELINE.reset()
    projects = _data_and_features(rows)
    _first_models_to_production(projects)
    _step("5. packaging each production version as a BentoML prediction service")
    packaged = _package_production(projects)
    _step("6. deploying through GitOps commits: staging and production")
    for project in packaged:
        _deploy(project)
        TIMELINE.mark(f"{project}: GitOps commits for staging and production")
    _serve_and_monitor(packaged)
    _status_and_history(projects)


def _data_and_features(rows: int | None) -> list[str]:
    """Steps 1-2: seeded data for every project with a generator, features applied and
    materialized; the projects."""
    from modelops.services import data, features

    settings = STATE.settings
    projects = data.projects_with_data(settings)  # none: generate says so, naming the folder
    _step("1. generating seeded example data")
    summaries = data.generate(settings, projects, rows=rows)
    for s in summaries:
        typer.echo(
            f"  {s.project}: {sum(t.rows for t in s.tables):,} rows, "
            f"positive rate {s.positive_rate:.2%}"
        )
    _step("2. applying feature definitions and materializing the online store")
    typer.echo(f"  {len(features.apply(settings))} Feast objects registered")
    end = max(t.end for s in summaries for t in s.tables) + timedelta(seconds=1)
    for view in features.materialize(settings, end):
        typer.echo(f"  {view.name}: {view.start:%Y-%m-%d} .. {view.end:%Y-%m-%d}")
    return projects


def _first_models_to_production(projects: list[str]) -> None:
    """Steps 3-4: v1 trained, then the candidate or its baseline walked to production."""
    from modelops.services import train

    settings = STATE.settings
    _step("3. training v1 and registering it with its lineage")
    first = {p: train.train(settings, p) for p in projects}
    echo_table(
        ["project", "version", "role", "holdout ROC-AUC", "PR-AUC", "cost/1000"],
        [
            [
                r.project,
                t.version,
                t.role,
                f"{t.metrics['holdout_roc_auc']:.3f}",
                f"{t.metrics['holdout_pr_auc']:.3f}",
                f"{t.metrics['holdout_cost_per_1000']:,.0f}",
            ]
            for r in first.values()
            for t in (r.baseline, r.candidate)
        ],
    )
    TIMELINE.mark(f"v1 trained and registered: {', '.join(projects)}")
    _step(
        "4. first model: the candidate or its logistic baseline, whichever the gate prefers, "
        "dev -> staging -> production"
    )
    for project, result in first.items():
        typer.echo(f"{project}:")
        for first_model in (result.candidate, result.baseline):
            reason = f"demo: first model ({first_model.role}), preferred by the gate"
            if _walk_to_production(project, first_model.version, reason):
                TIMELINE.mark(f"{project}: v{first_model.version} gated and promoted to production")
                break
            typer.secho(
                f"  {project} v{first_model.version} ({first_model.role}) stays out of production",
                fg=typer.colors.YELLOW,
            )


def _serve_and_monitor(packaged: list[str]) -> None:
    """Step 7, then the monitoring story for the projects whose labels arrive in time."""
    monitored = []
    for project in packaged:
        in_time, said = _labels_in_time(project)
        if in_time:
            monitored.append(project)
        else:
            typer.echo(f"  {project}: not monitored in the demo ({said})")
    _step(
        "7. serving production locally (modelops serve --reload-on-promotion): online features, "
        "the serving scorer, a prediction log"
    )
    services: dict[str, _Service] = {}
    try:
        for project in packaged:
            service = _start_service(project)
            try:
                _send(service, DEMO_REQUESTS)
            finally:
                if project in monitored:
                    services[project] = service
                else:
                    _stop_service(service)
        _monitoring_story(monitored, services)
    finally:
        for service in services.values():
            _stop_service(service)


def _status_and_history(projects: list[str]) -> None:
    """Steps 13-14: the status page, who serves where, the verified ledger and the timeline."""
    from modelops.cli.lifecycle import history
    from modelops.services import promote, status_page

    settings = STATE.settings
    _step("13. status page")
    site = status_page.build(settings)
    typer.echo(
        f"  {site.index} ({site.ledger_entries} ledger entries, {site.gate_reports} gate reports, "
        f"{site.monitoring_runs} monitoring runs)"
    )
    TIMELINE.mark(f"status page written: {site.index}")
    _step("14. history")
    for project in projects:
        serving = promote.holders(settings, project)
        typer.echo(
            f"{project}: "
            + ", ".join(f"{env}=v{version}" for env, version in serving.items() if version)
        )
    history(project=None, verify=True, env=None, at=None)
    typer.echo("\nTimeline (wall clock, since start, simulated time):")
    TIMELINE.echo()
    typer.echo(f"\nMLflow UI: mlflow ui --backend-store-uri {settings.tracking_uri}")


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
