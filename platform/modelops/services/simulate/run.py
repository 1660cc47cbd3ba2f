"""``simulate``: one period of an environment's traffic and the labels that follow, as a
sequence of named steps (see the package docstring)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from modelops.config.project import Project
from modelops.config.settings import Settings
from modelops.core import synthetic
from modelops.services.context import check_environment
from modelops.services.context import ledger as ledger_for
from modelops.services.context import project as project_for
from modelops.services.simulate import drill as drill_step
from modelops.services.simulate import replay, sources
from modelops.services.simulate import through_service as service_step
from modelops.services.simulate.drill import BAD_MODEL, DRILL_APPROVER, DRILL_TRAFFIC, Drill
from modelops.services.simulate.errors import SimulationError
from modelops.services.simulate.period import (
    GeneratedPeriod,
    day_start,
    generate_period,
    load_module,
)

if TYPE_CHECKING:
    import pyarrow as pa

SCENARIOS = (*synthetic.SCENARIOS, BAD_MODEL)


@dataclass(frozen=True)
class SimulationResult:
    project: str
    scenario: str
    traffic: str
    """The generator scenario of the traffic (``bad-model``: ``drill_traffic``)."""
    environment: str
    seed: int
    start: date
    end: date
    drift_start: date | None
    rate: float
    events: int
    logged: int
    fallbacks: int
    refused: int
    labels: int
    positives: int
    served_versions: tuple[str, ...]
    shadow_version: str | None
    drill: Drill | None
    through_service: str | None
    entity_offset: int | str | None
    label_table: Path
    feature_tables: tuple[Path, ...]
    prediction_log: str
    labels_known_from: datetime | None
    labels_known_until: datetime | None
    seconds: float
    notes: tuple[str, ...] = ()

    @property
    def period(self) -> tuple[datetime, datetime]:
        """``[start 00:00, end + 1 day 00:00)`` UTC."""
        return day_start(self.start), day_start(self.end + timedelta(days=1))


@dataclass(frozen=True)
class _Traffic:
    """What the traffic step did, in process or through a service."""

    logged: int
    fallbacks: int
    refused: int
    served_versions: tuple[str, ...]
    shadow_version: str | None
    labels: pa.Table
    """The period's label rows to append (restamped when a service answered)."""
    notes: tuple[str, ...] = ()


def _check_options(
    settings: Settings,
    environment: str,
    scenario: str,
    drill_traffic: str,
    through_service: str | None,
    shadow: str | None,
) -> None:
    check_environment(settings, environment)
    if scenario not in SCENARIOS:
        raise SimulationError(
            f"--scenario {scenario}: unknown scenario (available: {', '.join(SCENARIOS)})"
        )
    if drill_traffic not in DRILL_TRAFFIC:
        raise SimulationError(
            f"--drill-traffic {drill_traffic}: unknown scenario (available: "
            f"{', '.join(DRILL_TRAFFIC)})"
        )
    if through_service is not None and shadow is not None:
        raise SimulationError(
            "--shadow scores in process; a service scores its own shadow ('modelops serve "
            "--shadow')"
        )


def _first_day(
    settings: Settings, project: Project, start: date | None, days: int, through: str | None
) -> date:
    """``start``, checked against the label table in process; by default the day after the
    data (in process) or ``days`` before today (through a service, whose online store only
    answers for rows within the views' TTL)."""
    if start is None:
        if through is None:
            return sources.default_start(settings, project)
        return datetime.now(UTC).date() - timedelta(days=days)
    if through is None:
        sources.check_overlap(settings, project, start)
    return start


def _holder(settings: Settings, project: Project, environment: str, through: str | None) -> str:
    """The version holding ``environment`` (in process it scores the traffic: required)."""
    spec = project.spec
    holder = ledger_for(settings).holder(spec.name, environment).version
    if through is None and holder is None:
        raise SimulationError(
            f"nothing holds {environment} for {spec.name}: no version to score the traffic "
            f"with; promote one first (or --through-service a running service)"
        )
    return holder or ""


def _in_process(
    settings: Settings,
    project: Project,
    events: pa.Table,
    environment: str,
    holder: str,
    shadow: str | None,
    run_tag: str,
) -> _Traffic:
    served = replay.load_version(settings, project, holder)
    shadow_model = None
    if shadow is not None and str(shadow) != holder:
        shadow_model = replay.load_version(settings, project, str(shadow))
    logged, fallbacks, refused = replay.in_process(
        settings, project, events, environment, served, shadow_model, run_tag
    )
    shadow_version = shadow_model.version if shadow_model else None
    return _Traffic(logged, fallbacks, refused, (holder,), shadow_version, events)


def _through_service(
    settings: Settings,
    project: Project,
    events: pa.Table,
    url: str,
    run_tag: str,
    timeout: float,
) -> _Traffic:
    from modelops.integrations import feast as feast_io
    from modelops.services.context import feature_repo

    store = feast_io.open_store(feature_repo(settings))
    service = feast_io.feature_service(store, project.spec.feature_service)
    request_names = sources.request_fields(project, events, store, service)
    answers = service_step.through_service(url, project, events, request_names, run_tag, timeout)
    return _Traffic(
        answers.answered,
        answers.fallbacks,
        answers.refused,
        tuple(sorted(answers.versions)),
        None,
        service_step.restamp(events, project, answers.answered_at),
        (
            "labels are stamped with the time the service answered (the time it logged), "
            "keeping their generated delays",
        ),
    )


@dataclass(frozen=True)
class _Options:
    """How the traffic is sent (the options of :func:`simulate` that shape it)."""

    shadow: str | None
    through_service: str | None
    materialize: bool | None
    timeout: float


def _send_traffic(
    settings: Settings,
    project: Project,
    period: GeneratedPeriod,
    events: pa.Table,
    environment: str,
    holder: str,
    options: _Options,
) -> _Traffic:
    """Score and log the events in process, or send them to the service; the online store is
    loaded before a service is asked, after an in-process replay (when asked to)."""
    run_tag = f"sim-{period.start:%Y%m%d}-{uuid.uuid4().hex[:8]}"
    period_end = day_start(period.end + timedelta(days=1))
    if options.through_service is None:
        done = _in_process(settings, project, events, environment, holder, options.shadow, run_tag)
        if options.materialize:
            sources.materialize(settings, period_end)
        return done
    if options.materialize is None or options.materialize:
        sources.materialize(settings, min(period_end, datetime.now(UTC)))
    return _through_service(
        settings, project, events, options.through_service, run_tag, options.timeout
    )


def _label_bounds(
    project: Project, labels: pa.Table
) -> tuple[datetime | None, datetime | None, int]:
    """When the appended labels become known (first, last), and how many are positive."""
    import pyarrow.compute as pc

    label = project.spec.label
    known_from = known_until = None
    if label.available_at and label.available_at in labels.column_names and len(labels):
        bounds = pc.min_max(labels[label.available_at]).as_py()
        known_from, known_until = bounds["min"], bounds["max"]
    positives = 0
    if label.column in labels.column_names and len(labels):
        positives = int(pc.sum(pc.cast(labels[label.column], "int64")).as_py() or 0)
    return known_from, known_until, positives


def _notes(project: Project, sent: _Traffic) -> tuple[str, ...]:
    if not sent.refused:
        return sent.notes
    return (
        *sent.notes,
        f"{sent.refused} events were not scored: no features for their entity (serving."
        f"missing_features is '{project.spec.serving.missing_features}') or the service refused",
    )


def simulate(
    settings: Settings,
    project_name: str,
    *,
    scenario: str = "healthy",
    days: int = 7,
    start: date | None = None,
    rate: float | None = None,
    seed: int = 42,
    environment: str = "production",
    through_service: str | None = None,
    shadow: str | None = None,
    bad_version: str | None = None,
    drill_traffic: str = "concept-drift",
    break_features: tuple[str, ...] = (),
    approver: str | None = None,
    actor: str | None = None,
    materialize: bool | None = None,
    timeout: float = 30.0,
) -> SimulationResult:
    """Simulate ``days`` of ``environment``'s traffic and the labels that follow; see the
    package docstring.

    Args:
        scenario: ``healthy``, ``covariate-drift``, ``concept-drift`` or ``bad-model``.
        start: first day of the period; default the day after the holdout and the label
            table's last event (in process), or ``days`` before today (through a service,
            whose online store only answers for rows within the views' TTL).
        rate: events a day; default that of the generator's example data.
        through_service: a running service's base URL: POST ``/predict_batch`` there instead
            of scoring in process.
        shadow: in process, a version to score every request with as the service's shadow.
        bad_version: ``bad-model``: the version to promote (default: train a new one).
        drill_traffic: ``bad-model``: the scenario of the traffic that follows the promotion.
        break_features: ``bad-model`` without ``bad_version``: the features the drill's training
            breaks (default: the ``DRILL_BROKEN_FEATURES`` of the project's ``data.py``).
        approver: ``bad-model``: who approves (default :data:`DRILL_APPROVER`).
        materialize: load the period's feature rows into the online store (incrementally, as
            ``modelops features materialize``): through a service before the first request, up
            to the period's end or now, whichever is earlier; in process after the traffic, up
            to the period's end (the simulated clock), so that a local service and its
            package checks see the entities. Default: through a service only.
        timeout: seconds for each request to the service.

    Raises:
        SimulationError: no generator, no data to continue, an overlapping period, a service
            that answers with an error.
        DrillRefusedError: ``bad-model``: the gate or a promotion rule refused the version.
    """
    started = time.perf_counter()
    _check_options(settings, environment, scenario, drill_traffic, through_service, shadow)
    if break_features and scenario != BAD_MODEL:
        raise SimulationError(f"--break-feature: only with --scenario {BAD_MODEL}")
    project = project_for(settings, project_name)
    spec = project.spec
    module = load_module(project)
    label_path = sources.existing(settings, project, spec.label.table)
    start = _first_day(settings, project, start, days, through_service)
    traffic = drill_traffic if scenario == BAD_MODEL else scenario
    drill = None
    if scenario == BAD_MODEL:
        who = approver or DRILL_APPROVER
        drill = drill_step.drill(
            settings, project, environment, traffic, bad_version, who, actor, break_features
        )
    holder = _holder(settings, project, environment, through_service)

    keep = sources.keep_days(settings, project)
    period = generate_period(
        module, project, traffic, start, days, rate=rate, seed=seed, keep_days=keep
    )
    offset = sources.entity_offset(settings, project, period)
    events = sources.shift(period.events, spec.entity, offset)
    feature_paths = sources.append_features(settings, project, period, offset)
    options = _Options(shadow, through_service, materialize, timeout)
    sent = _send_traffic(settings, project, period, events, environment, holder, options)
    sources.append(label_path, sent.labels)

    return _result(
        settings,
        project,
        period,
        events,
        sent,
        _Run(scenario, traffic, environment, seed, through_service, drill, offset, started),
        label_path,
        feature_paths,
    )


@dataclass(frozen=True)
class _Run:
    """What one simulation was asked and did before its traffic, for its result."""

    scenario: str
    traffic: str
    environment: str
    seed: int
    through_service: str | None
    drill: Drill | None
    offset: int | str | None
    started: float


def _result(
    settings: Settings,
    project: Project,
    period: GeneratedPeriod,
    events: pa.Table,
    sent: _Traffic,
    run: _Run,
    label_path: Path,
    feature_paths: list[Path],
) -> SimulationResult:
    spec = project.spec
    known_from, known_until, positives = _label_bounds(project, sent.labels)
    return SimulationResult(
        project=spec.name,
        scenario=run.scenario,
        traffic=run.traffic,
        environment=run.environment,
        seed=run.seed,
        start=period.start,
        end=period.end,
        drift_start=period.drift_start,
        rate=period.rate,
        events=len(events),
        logged=sent.logged,
        fallbacks=sent.fallbacks,
        refused=sent.refused,
        labels=len(sent.labels),
        positives=positives,
        served_versions=sent.served_versions,
        shadow_version=sent.shadow_version,
        drill=run.drill,
        through_service=run.through_service,
        entity_offset=run.offset,
        label_table=label_path,
        feature_tables=tuple(feature_paths),
        prediction_log=settings.resolved_prediction_log,
        labels_known_from=known_from,
        labels_known_until=known_until,
        seconds=round(time.perf_counter() - run.started, 3),
        notes=_notes(project, sent),
    )
