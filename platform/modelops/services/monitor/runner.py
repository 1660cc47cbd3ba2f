"""One monitoring run as a sequence of named steps (:func:`run`), and runs on a schedule
(:func:`watch`). The package docstring (:mod:`modelops.services.monitor`) describes the steps."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.config.project import Project
from modelops.config.settings import Settings
from modelops.core import monitoring as policy_core
from modelops.core.errors import ModelopsError
from modelops.core.monitor_record import MonitorSummary
from modelops.core.promotion import Expectation
from modelops.integrations import evidently as evidently_io
from modelops.integrations import mlflow as mlflow_io
from modelops.integrations.database import Ledger, RecordedEntry
from modelops.services.context import check_environment, tracking
from modelops.services.context import ledger as ledger_for
from modelops.services.context import project as project_for
from modelops.services.judged import Snapshot, snapshot
from modelops.services.monitor import act, decide, performance, record, retrain, window
from modelops.services.monitor import estimated as estimated_io
from modelops.services.monitor.common import MONITOR_ACTOR, MonitorError, Outcome, _seed, _utc
from modelops.services.monitor.lineage import Lineage, lineage_of
from modelops.services.monitor.measure import measure_drift, measure_quality
from modelops.services.monitor.prometheus import push as push_gauges
from modelops.services.monitor.prometheus import write_textfile
from modelops.services.monitor.reference import Reference, load_reference, monitoring_dir

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorRun:
    run_id: str
    project: str
    environment: str
    version: str
    started_at: datetime
    as_of: datetime
    window: tuple[datetime, datetime]
    findings: policy_core.Findings
    decision: policy_core.Decision
    outcomes: list[Outcome]
    run_dir: Path
    summary_json: Path
    report_html: Path | None
    performance_html: Path | None
    prometheus: Path | None
    mlflow_run_id: str | None
    dry_run: bool
    seconds: float
    timings: dict[str, float]
    notes: list[str]

    @property
    def exit_code(self) -> int:
        return max((o.exit_code or 0 for o in self.outcomes), default=0)

    @property
    def pending_promotion(self) -> dict[str, Any] | None:
        for o in self.outcomes:
            if o.details.get("pending_promotion"):
                return dict(o.details["pending_promotion"])
        return None


@dataclass
class _Laps:
    """Seconds per step, in the order the steps ran."""

    timings: dict[str, float] = field(default_factory=dict)
    began: float = field(default_factory=time.perf_counter)
    clock: float = field(default_factory=time.perf_counter)

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self.clock, 3)
        self.clock = now

    def seconds(self) -> float:
        return round(time.perf_counter() - self.began, 3)


@dataclass(frozen=True)
class _Context:
    """What one run watches, as of when, and where its files go."""

    settings: Settings
    project: Project
    environment: str
    holder: str
    judged: Snapshot
    """The holder and the moves that put it there, read once when the run starts: what every
    finding is about and what every move of the run expects (a compare-and-swap on it)."""
    ledger: Ledger
    run_id: str
    run_dir: Path
    started_at: datetime
    as_of: datetime
    window: tuple[datetime, datetime]
    actor: str
    dry_run: bool
    push: bool

    @property
    def name(self) -> str:
        return self.project.spec.name


@dataclass
class _Seen:
    """What the run measured."""

    lineage: Lineage
    reference: Reference
    findings: policy_core.Findings
    drift_result: evidently_io.DriftResult | None
    performance_html: Path | None
    moved: RecordedEntry | None
    notes: list[str]


def run(
    settings: Settings,
    project_name: str,
    *,
    environment: str = "production",
    as_of: datetime | None = None,
    dry_run: bool = False,
    actor: str | None = None,
    push: bool = False,
    textfile_dir: Path | None = None,
) -> MonitorRun:
    """One monitoring run of ``environment``'s holder; see :mod:`modelops.services.monitor`.

    Args:
        as_of: the end of the window and the time labels must be known by (default: now); a
            replay of simulated traffic passes the simulation's clock.
        dry_run: decide and save the report; no MLflow run, ledger entry, move or textfile.
        actor: recorded on the actions (default: modelops-monitor).
        push: push the GitOps commits of the moves to the GitOps repository's remote.
        textfile_dir: where the Prometheus textfile goes (default ``<state_dir>/prometheus``).

    Raises:
        MonitorError: nothing holds ``environment``, the holder has no lineage, the log cannot
            be read.
    """
    laps = _Laps()
    ctx = _start(settings, project_name, environment, as_of, dry_run, actor, push)
    summary_path = ctx.run_dir / "summary.json"
    with mlflow_io.session(tracking(settings)) as client:
        seen = _observe(ctx, client, laps)
        decision = _decide(ctx, client, seen)
        laps.lap("decide")
        base = _summary(ctx, seen, decision, laps)
        record.write_summary(summary_path, base)
        mlflow_run_id = None if dry_run else _log_mlflow(ctx, client, seen, decision, laps)
    links = _links(ctx, seen, summary_path, mlflow_run_id)
    outcomes = [execute(ctx, action, seen.lineage, links) for action in decision.executable]
    if outcomes:
        laps.lap("act")
    prometheus = None
    if not dry_run:
        gauges = (ctx.name, environment, ctx.holder, seen.findings, decision)
        primary = ctx.project.spec.primary_metric
        prometheus = write_textfile(
            textfile_dir or settings.resolved_state_dir / "prometheus", *gauges, primary
        )
        if settings.pushgateway_url:
            failed = push_gauges(settings.pushgateway_url, *gauges, primary)
            seen.notes.append(failed or f"metrics pushed to {settings.pushgateway_url}")
    seconds = laps.seconds()
    final = record.finished(base, outcomes, laps.timings, seconds, mlflow_run_id)
    _save_final(settings, summary_path, final, mlflow_run_id)
    return MonitorRun(
        run_id=ctx.run_id,
        project=ctx.name,
        environment=environment,
        version=ctx.holder,
        started_at=ctx.started_at,
        as_of=ctx.as_of,
        window=ctx.window,
        findings=seen.findings,
        decision=decision,
        outcomes=outcomes,
        run_dir=ctx.run_dir,
        summary_json=summary_path,
        report_html=ctx.run_dir / "report.html" if seen.drift_result else None,
        performance_html=seen.performance_html,
        prometheus=prometheus,
        mlflow_run_id=mlflow_run_id,
        dry_run=dry_run,
        seconds=seconds,
        timings=laps.timings,
        notes=seen.notes,
    )


def _start(
    settings: Settings,
    project_name: str,
    environment: str,
    as_of: datetime | None,
    dry_run: bool,
    actor: str | None,
    push: bool,
) -> _Context:
    """The run's context: the environment's holder, the window, the run's id and folder."""
    started_at = datetime.now(UTC)
    check_environment(settings, environment)
    project = project_for(settings, project_name)
    spec = project.spec
    moment = _utc(as_of or started_at)
    ledger = ledger_for(settings)
    judged = snapshot(ledger, spec.name, environment)
    holder = judged.holder.version
    if holder is None:
        raise MonitorError(f"nothing holds {environment} for {spec.name}: nothing to monitor")
    run_id = f"{started_at:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    return _Context(
        settings=settings,
        project=project,
        environment=environment,
        holder=holder,
        judged=judged,
        ledger=ledger,
        run_id=run_id,
        run_dir=monitoring_dir(settings) / spec.name / run_id,  # made by the first file saved
        started_at=started_at,
        as_of=moment,
        window=(moment - timedelta(hours=spec.monitoring.window_hours), moment),
        actor=actor or MONITOR_ACTOR,
        dry_run=dry_run,
        push=push,
    )


def _observe(ctx: _Context, client: Any, laps: _Laps) -> _Seen:
    """Lineage, reference, the log's window and look-back, data quality, drift, tenure and
    performance: the findings."""
    spec, monitoring = ctx.project.spec, ctx.project.spec.monitoring
    notes: list[str] = []
    lineage = lineage_of(client, spec.registered_model, ctx.holder)
    laps.lap("lineage")
    reference = load_reference(ctx.settings, ctx.project, lineage, monitoring.reference_rows)
    if not reference.profile.get("same_rows_as_training", True):
        notes.append(
            "the reference was rebuilt from data that changed since training (dataset "
            "fingerprints differ from the lineage's)"
        )
    laps.lap("reference")
    frame = window.read_window(
        ctx.settings, spec.name, ctx.environment, ctx.window, reference, lineage.features
    )
    laps.lap("read window")
    lookback = max(monitoring.performance_window_days, monitoring.probation_days)
    scored = window.read_scored(
        ctx.settings,
        spec.name,
        ctx.environment,
        ctx.as_of - timedelta(days=lookback),
        ctx.as_of,
        spec.entity,
    )
    laps.lap("read look-back")
    if frame.empty:
        notes.append(
            f"no predictions logged between {ctx.window[0]:%F %T} and {ctx.window[1]:%F %T}"
        )
    quality, drift, drift_result = _measure_window(ctx, frame, reference, lineage, laps)
    del frame
    notes.extend(drift.notes if drift else ())
    moved = ctx.judged.last_move
    tenure = decide.tenure(ctx.judged.earlier_holders, ctx.holder, scored, moved, ctx.as_of)
    labelled = performance.labelled_predictions(ctx.settings, ctx.project, scored, ctx.as_of, notes)
    laps.lap("labels")
    measured = performance.measure_performance(
        ctx.settings,
        client,
        ctx.ledger,
        ctx.project,
        ctx.environment,
        lineage,
        labelled,
        tenure,
        ctx.run_dir,
    )
    laps.lap("performance")
    estimated, estimate_check = estimated_io.measure(
        ctx.settings,
        client,
        ctx.ledger,
        ctx.project,
        ctx.environment,
        lineage,
        reference,
        scored,
        labelled,
        tenure,
        notes,
    )
    laps.lap("estimated performance")
    findings = policy_core.Findings(
        project=spec.name,
        environment=ctx.environment,
        version=ctx.holder,
        quality=quality,
        tenure=tenure,
        drift=drift,
        performance=measured.performance,
        shadow=measured.shadow,
        estimated=estimated,
        estimate_check=estimate_check,
    )
    return _Seen(lineage, reference, findings, drift_result, measured.report_html, moved, notes)


def _measure_window(
    ctx: _Context, frame: pd.DataFrame, reference: Reference, lineage: Lineage, laps: _Laps
) -> tuple[policy_core.Quality, policy_core.Drift | None, evidently_io.DriftResult | None]:
    """Data quality of every row of the window, then Evidently's drift on a sample of it."""
    import pandas as pd

    quality = measure_quality(frame, lineage.features, reference.profile)
    for name in reference.numerical:  # text that is no number is counted above; now NaN
        if name in frame.columns and frame[name].dtype == object:
            frame[name] = pd.to_numeric(frame[name], errors="coerce")
    laps.lap("data quality")
    drift, drift_result = measure_drift(
        frame,
        reference,
        lineage.features,
        ctx.project.spec.monitoring,
        ctx.run_dir,
        _seed(ctx.name, ctx.environment, ctx.as_of.isoformat()),
    )
    laps.lap("drift (Evidently)")
    return quality, drift, drift_result


def _decide(ctx: _Context, client: Any, seen: _Seen) -> policy_core.Decision:
    """The policy's decision on the findings, given the monitor's history."""
    past_actions = decide.history(
        ctx.ledger,
        client,
        ctx.name,
        ctx.environment,
        ctx.holder,
        seen.moved.at if seen.moved else None,
        ctx.window[0],
        ctx.actor,
    )
    return policy_core.decide_actions(
        seen.findings,
        past_actions,
        decide.policy_of(ctx.project),
        now=ctx.as_of,
        dry_run=ctx.dry_run,
    )


def _summary(
    ctx: _Context, seen: _Seen, decision: policy_core.Decision, laps: _Laps
) -> MonitorSummary:
    return record.summary(
        ctx.run_id,
        ctx.started_at,
        ctx.as_of,
        ctx.window,
        ctx.name,
        ctx.environment,
        ctx.holder,
        seen.findings,
        decision,
        seen.reference,
        seen.drift_result,
        seen.performance_html,
        seen.notes,
        ctx.dry_run,
        laps.timings,
    )


def _log_mlflow(
    ctx: _Context, client: Any, seen: _Seen, decision: policy_core.Decision, laps: _Laps
) -> str | None:
    """The run's MLflow run (None when MLflow refused; the files are on disk)."""
    mlflow_run_id = record.log_mlflow(
        client,
        ctx.settings,
        ctx.run_id,
        ctx.name,
        ctx.environment,
        ctx.holder,
        ctx.window,
        seen.findings,
        decision,
        ctx.run_dir,
    )
    laps.lap("MLflow run")
    return mlflow_run_id


def _links(
    ctx: _Context, seen: _Seen, summary_path: Path, mlflow_run_id: str | None
) -> dict[str, Any]:
    """What every action's ledger entry links to."""
    return {
        "run_id": ctx.run_id,
        "as_of": ctx.as_of.isoformat(),
        "report_html": str(ctx.run_dir / "report.html") if seen.drift_result else None,
        "performance_html": str(seen.performance_html) if seen.performance_html else None,
        "summary_json": str(summary_path),
        "mlflow_run_id": mlflow_run_id,
    }


def _save_final(
    settings: Settings, path: Path, final: MonitorSummary, mlflow_run_id: str | None
) -> None:
    """The complete summary.json, on disk and in the run's MLflow run."""
    record.write_summary(path, final)
    if mlflow_run_id is None:
        return
    try:
        with mlflow_io.session(tracking(settings)) as client:
            client.log_artifact(mlflow_run_id, str(path))
    except Exception as exc:  # the run's files are complete on disk
        log.warning("could not update summary.json in MLflow run %s: %s", mlflow_run_id, exc)


def execute(
    ctx: _Context, action: policy_core.Action, lineage: Lineage, links: dict[str, Any]
) -> Outcome:
    """Carry out one action of the run (see :func:`_execute`)."""
    return _execute(
        ctx.settings,
        ctx.project,
        ctx.environment,
        action,
        lineage,
        ctx.as_of,
        ctx.actor,
        ctx.push,
        links,
        expect=ctx.judged.expectation,
    )


def _execute(
    settings: Settings,
    project: Project,
    environment: str,
    action: policy_core.Action,
    lineage: Lineage,
    as_of: datetime,
    actor: str,
    push: bool,
    links: dict[str, Any],
    *,
    expect: Expectation,
) -> Outcome:
    """Carry out one action and record it; a failure (a refused move among them) is an
    outcome, never a half-recorded success. ``expect``: the environment's state the decision
    was made on; a rollback or a retraining's promotion into ``environment`` is refused (and
    recorded) when it moved since."""
    try:
        if action.kind == policy_core.ROLLBACK:
            return act.rollback(settings, project, environment, action, actor, push, links, expect)
        if action.kind == policy_core.RETRAIN:
            return retrain.retrain(
                settings, project, environment, action, lineage, as_of, actor, push, links, expect
            )
        if action.kind == policy_core.PROPOSE:
            return act.propose(settings, project, environment, action, lineage, actor, links)
        return act.alert(settings, project, environment, action, lineage, actor, links)
    except ModelopsError as exc:
        log.error("monitor %s failed: %s", action.kind, exc)
        return Outcome(action.kind, False, f"failed: {exc}", exit_code=exc.exit_code)


def watch(
    settings: Settings,
    project_name: str,
    *,
    interval: float,
    environment: str = "production",
    dry_run: bool = False,
    actor: str | None = None,
    push: bool = False,
    textfile_dir: Path | None = None,
    runs: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[MonitorRun | ModelopsError]:
    """Run every ``interval`` seconds (``runs`` times, or until interrupted); yields each run,
    or the error that stopped it (the next run still happens)."""
    done = 0
    while runs is None or done < runs:
        began = time.monotonic()
        try:
            yield run(
                settings,
                project_name,
                environment=environment,
                dry_run=dry_run,
                actor=actor,
                push=push,
                textfile_dir=textfile_dir,
            )
        except ModelopsError as exc:
            yield exc
        done += 1
        if runs is None or done < runs:
            sleep(max(0.0, interval - (time.monotonic() - began)))
