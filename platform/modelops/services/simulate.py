"""``modelops simulate``: production traffic and delayed labels from a project's ``data.py``, so
the whole monitoring loop (log → drift → labels → rollback or retraining) reproduces offline.

One simulation covers a *period* of ``days`` whole days (UTC) after the data the model was
trained on: by default it starts the day after the later of the holdout window's end and the
label table's last event (so consecutive simulations continue one timeline).

1. **generate**: the project's own generator (:mod:`modelops.core.synthetic`) writes a window
   that ends with the period and starts as long before it as the generator's default window
   lasts, with ``drift_start`` on the period's first day, at ``rate`` events a day. Everything
   before the period is history (rolling aggregates, balances, account ages come out as they
   do at the end of the example data) and, by the generators' contract, identical for every
   scenario of the same seed; only the period's events are kept, with the feature rows of their
   entities from :data:`KEEP_DAYS` (or the feature views' longest TTL) before it.
2. **entities**: the generated entities are renumbered above every entity the tables already
   hold (string keys get a prefix), so a simulated history never mixes with a real one of the
   same id; training and holdout joins never see the simulated rows.
3. **sources**: the feature rows go into the feature repo's source tables (appended, atomically),
   so the offline store joins them and ``modelops features materialize`` loads them online.
4. **traffic**:

   - *in process* (default): each event is joined point-in-time with the feature service (the
     join the training set uses), scored by the serving scorer of the version holding ``--env``
     (the verified artifact, :func:`~modelops.core.scorer.build_scorer`), decided with the
     project's decision policy, and written through the service's own prediction-log writer
     (:class:`~modelops.serving.prediction_log.PredictionLog`, same schema) with the event's
     timestamp as ``logged_at``. A shadow version is scored by the writer, as in the service.
     This is the exact replay: every event sees its features as of its own time.
   - *through a service* (``through_service``): ``POST /predict_batch`` in time order, at most
     ``serving.max_batch`` entities and each entity once per batch; the service reads the
     online store and writes the log with its own clock. Labels are then stamped with the time
     the service answered (keeping the generator's delays), since that is the time the log
     holds and the monitor joins on (``label_join_tolerance_seconds``).

5. **labels**: the period's label rows are appended to the project's label table with their
   ``available_at`` as generated, so the monitor's join finds them as (simulated) time passes.

``bad-model`` is a drill: a version that passes the gate on the holdout (by default a fresh
``train``; or ``bad_version``) is promoted through every environment up to ``--env`` by
:func:`~modelops.services.promote.promote`, with an approval and a reason that say it is a
drill, and then meets ``drill_traffic`` (default ``concept-drift``) traffic, on which it falls
below its gate-time metrics. The gate is never bypassed: a version it refuses is not promoted
and the drill stops with the refusal. :func:`measure_reaction` then runs the monitor until one
run rolls back, and times each step back to the previous version serving.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.config.project import Project
from modelops.config.settings import Settings
from modelops.core import synthetic, tags
from modelops.core.errors import ModelopsError
from modelops.services.context import approval_required, check_environment, tracking
from modelops.services.context import ledger as ledger_for
from modelops.services.context import project as project_for

if TYPE_CHECKING:
    import pyarrow as pa

    from modelops.core.plugins import DataModule
    from modelops.core.scorer import Scorer
    from modelops.serving.policy import DecisionPolicy

log = logging.getLogger(__name__)

BAD_MODEL = "bad-model"
SCENARIOS = (*synthetic.SCENARIOS, BAD_MODEL)
DRILL_TRAFFIC = ("healthy", "covariate-drift", "concept-drift")
DRILL_APPROVER = "modelops-simulate"
"""Who approves a drill's production promotion unless ``approver`` names someone: the ledger
then shows that a drill, not a person, approved it."""
EVENT_TIME = "event_timestamp"
"""The time column of every table a generator writes (``synthetic.TableWriter``)."""
KEEP_DAYS = 92
"""Feature rows kept before the period when the feature views' TTLs cannot be read."""
MAX_DAYS = 366
LOG_CHUNK = 20_000
REACTION_TARGET_S = 30.0


class SimulationError(ModelopsError):
    """A simulation cannot run: no generator, no data to continue, a period that overlaps."""


class DrillRefusedError(ModelopsError):
    """The gate (or the promotion rules) refused the drill's version: nothing was bypassed."""


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Drill:
    """What the bad-model drill did in the ledger."""

    previous_version: str
    bad_version: str
    trained: bool
    verdicts: dict[str, str]
    """environment → id of the passing verdict that allowed the move."""
    moves: dict[str, int]
    """environment → ledger seq of the promotion."""
    approver: str
    reason: str
    gitops: str = ""
    """What the GitOps deploy of the version did (a commit, or why there is none)."""


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
        return _day_start(self.start), _day_start(self.end + timedelta(days=1))


@dataclass(frozen=True)
class GeneratedPeriod:
    """A scenario's events of one period and the feature rows they need (Arrow tables)."""

    scenario: str
    seed: int
    start: date
    end: date
    drift_start: date | None
    rate: float
    label_table: str
    events: pa.Table
    features: dict[str, pa.Table]
    positive_rate: float


# ----------------------------------------------------------------------------- generate


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _load_module(settings: Settings, project: Project) -> DataModule:
    from modelops.services.data import load_data_module

    module = load_data_module(project)
    if module is None:
        raise SimulationError(
            f"{project.directory / 'data.py'}: none; simulation replays a project's example-"
            "data generator (docs/adding-a-project.md)"
        )
    return module


def _history_days(module: DataModule) -> int:
    first, last = module.DEFAULT_WINDOW
    return (last - first).days + 1


def default_rate(module: DataModule) -> float:
    """Events a day of the example data: the generator's default rows over its default window."""
    return module.DEFAULT_ROWS / _history_days(module)


def generate_period(
    module: DataModule,
    project: Project,
    scenario: str,
    start: date,
    days: int,
    *,
    rate: float | None = None,
    seed: int = 42,
    keep_days: int = KEEP_DAYS,
) -> GeneratedPeriod:
    """The events of ``[start, start + days)`` under ``scenario`` and their entities' feature
    rows (see the module docstring); writes only into a temporary folder.

    Raises:
        SimulationError: the scenario, days or rate is out of range; the generator writes no
            label table named as project.yaml's ``label.table``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if scenario not in synthetic.SCENARIOS:
        raise SimulationError(
            f"--scenario {scenario}: unknown traffic scenario (available: "
            f"{', '.join(synthetic.SCENARIOS)})"
        )
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise SimulationError(f"--days {days}: must be a whole number from 1 to {MAX_DAYS}")
    per_day = default_rate(module) if rate is None else float(rate)
    if not math.isfinite(per_day) or per_day <= 0:
        raise SimulationError(f"--rate {rate}: must be a positive number of events a day")
    spec = project.spec
    end = start + timedelta(days=days - 1)
    first = start - timedelta(days=_history_days(module))
    total_days = (end - first).days + 1
    rows = max(synthetic.MIN_ROWS, math.ceil(per_day * total_days))
    drift_start = None if scenario == "healthy" else start
    with tempfile.TemporaryDirectory(prefix="modelops-simulate-") as folder:
        summary = synthetic.generate(
            module,
            spec.name,
            Path(folder),
            start=first,
            end=end,
            rows=rows,
            scenario=scenario,
            seed=seed,
            drift_start=drift_start,
        )
        tables = {t.name: pq.read_table(t.path) for t in summary.tables}
    label_name = spec.label.table
    if label_name not in tables:
        raise SimulationError(
            f"{project.spec_file}: field 'label.table' = '{label_name}': the generator writes "
            f"no such table (it writes {', '.join(sorted(tables))})"
        )
    lo, hi = _day_start(start), _day_start(end + timedelta(days=1))
    stamp = spec.label.timestamp
    labels = tables.pop(label_name)
    times = labels[stamp]
    events = labels.filter(
        pc.and_(
            pc.greater_equal(times, pa.scalar(lo, times.type)),
            pc.less(times, pa.scalar(hi, times.type)),
        )
    )
    events = events.sort_by([(stamp, "ascending"), (spec.entity, "ascending")])
    entities = pc.unique(events[spec.entity]) if spec.entity in events.column_names else None
    since = lo - timedelta(days=keep_days)
    features: dict[str, pa.Table] = {}
    for name, table in tables.items():
        if EVENT_TIME not in table.column_names:
            continue
        column = table[EVENT_TIME]
        keep = pc.and_(
            pc.greater_equal(column, pa.scalar(since, column.type)),
            pc.less(column, pa.scalar(hi, column.type)),
        )
        if entities is not None and spec.entity in table.column_names:
            keep = pc.and_(keep, pc.is_in(table[spec.entity], value_set=entities))
        features[name] = table.filter(keep)
    return GeneratedPeriod(
        scenario=scenario,
        seed=seed,
        start=start,
        end=end,
        drift_start=drift_start,
        rate=per_day,
        label_table=label_name,
        events=events,
        features=features,
        positive_rate=summary.positive_rate,
    )


# ----------------------------------------------------------------------------- tables


def _table_path(settings: Settings, name: str) -> Path:
    return settings.data_dir / f"{name}.parquet"


def _existing(settings: Settings, project: Project, name: str) -> Path:
    path = _table_path(settings, name)
    if not path.is_file():
        raise SimulationError(
            f"{path}: not found; a simulation continues the data the model was trained on: run "
            f"'modelops data generate --project {project.spec.name}' first"
        )
    return path


def default_start(settings: Settings, project: Project) -> date:
    """The day after the later of the holdout window's end and the label table's last event."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    spec = project.spec
    start = spec.windows.holdout.end + timedelta(days=1)
    path = _existing(settings, project, spec.label.table)
    times = pq.read_table(path, columns=[spec.label.timestamp])[spec.label.timestamp]
    latest = pc.max(times).as_py() if len(times) else None
    if isinstance(latest, datetime):
        start = max(start, latest.date() + timedelta(days=1))
    return start


def _check_overlap(settings: Settings, project: Project, start: date) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    spec = project.spec
    path = _existing(settings, project, spec.label.table)
    times = pq.read_table(path, columns=[spec.label.timestamp])[spec.label.timestamp]
    latest = pc.max(times).as_py() if len(times) else None
    if isinstance(latest, datetime) and latest >= _day_start(start):
        raise SimulationError(
            f"--start {start}: {path.name} already holds events up to {latest:%Y-%m-%d %H:%M} "
            f"(the example data or an earlier simulation); start on "
            f"{latest.date() + timedelta(days=1)} or later, so the log and the labels stay one "
            "timeline"
        )


def _entity_offset(
    settings: Settings, project: Project, period: GeneratedPeriod
) -> int | str | None:
    """What renumbers the period's entities above every entity the tables hold: an integer to
    add, or a string prefix; None when nothing collides."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    entity = project.spec.entity
    if entity not in period.events.column_names or len(period.events) == 0:
        return None
    kind = period.events.schema.field(entity).type
    if not pa.types.is_integer(kind):
        return f"sim{period.start:%Y%m%d}s{period.seed}-"
    generated: list[int] = []
    existing: list[int] = []
    for name, table in [(period.label_table, period.events), *period.features.items()]:
        if entity not in table.column_names:
            continue
        if len(table):
            generated.append(int(pc.min(table[entity]).as_py()))
        path = _table_path(settings, name)
        if path.is_file() and entity in pq.read_schema(path).names:
            column = pq.read_table(path, columns=[entity])[entity]
            if len(column):
                existing.append(int(pc.max(column).as_py()))
    if not generated or not existing or min(generated) > max(existing):
        return None
    return max(existing) + 1 - min(generated)


def _shift(table: pa.Table, entity: str, offset: int | str | None) -> pa.Table:
    import pyarrow as pa
    import pyarrow.compute as pc

    if offset is None or entity not in table.column_names:
        return table
    index = table.column_names.index(entity)
    column = table[entity]
    if isinstance(offset, str):
        shifted = pc.binary_join_element_wise(
            pa.scalar(offset), pc.cast(column, pa.string()), pa.scalar("")
        )
    else:
        shifted = pc.add(column, pa.scalar(offset, column.type))
    return table.set_column(index, table.schema.field(entity).with_type(shifted.type), shifted)


def _append(path: Path, rows: pa.Table) -> None:
    """Append ``rows`` to the parquet file at ``path`` (its schema kept), atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    existing = pq.read_table(path)
    missing = [n for n in existing.schema.names if n not in rows.column_names]
    if missing:
        raise SimulationError(f"{path}: simulated rows lack column(s) {', '.join(missing)}")
    try:
        added = rows.select(existing.schema.names).cast(existing.schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SimulationError(f"{path}: simulated rows do not fit its schema: {exc}") from exc
    combined = pa.concat_tables([existing, added])
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(combined, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _keep_days(settings: Settings, project: Project) -> int:
    """The longest TTL of the feature service's views, in whole days (else :data:`KEEP_DAYS`)."""
    from modelops.integrations import feast as feast_io
    from modelops.services.context import feature_repo

    try:
        store = feast_io.open_store(feature_repo(settings))
        service = feast_io.feature_service(store, project.spec.feature_service)
        longest = timedelta(0)
        for projection in service.feature_view_projections:
            try:
                ttl = store.get_feature_view(projection.name).ttl
            except Exception:  # an on-demand view: no TTL of its own
                continue
            if ttl:
                longest = max(longest, ttl)
    except Exception as exc:
        log.info("feature TTLs unreadable (%s); keeping %d days of feature rows", exc, KEEP_DAYS)
        return KEEP_DAYS
    return max(1, math.ceil(longest.total_seconds() / 86_400)) if longest else KEEP_DAYS


# ----------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class _Served:
    """A verified registered version, as the service holds it (and as the writer's shadow)."""

    version: str
    scorer: Scorer
    policy: DecisionPolicy


def _load_version(settings: Settings, project: Project, version: str) -> _Served:
    from modelops.core.scorer import build_scorer
    from modelops.integrations import mlflow as mlflow_io
    from modelops.serving.policy import DecisionPolicy

    spec = project.spec
    with mlflow_io.session(tracking(settings)) as client:
        found = dict(mlflow_io.get_version(client, spec.registered_model, version).tags)
        features = [f for f in found.get(tags.FEATURES, "").split(",") if f]
        if tags.THRESHOLD not in found or not features:
            raise SimulationError(
                f"{spec.registered_model} v{version} lacks the tag(s) {tags.THRESHOLD} or "
                f"{tags.FEATURES}: register it again with 'modelops train'"
            )
        fitted, _ = mlflow_io.load_verified_model(
            f"models:/{spec.registered_model}/{version}",
            found.get(tags.ARTIFACT_SHA256),
            f"{spec.registered_model} v{version}",
        )
    scorer = build_scorer(fitted, features)
    policy = DecisionPolicy.of(float(found[tags.THRESHOLD]), spec.decisions)
    return _Served(str(version), scorer, policy)


def _plain(values: Sequence[Any]) -> list[Any]:
    """JSON-ready Python values: numpy scalars unwrapped, NaN/NA/NaT as None."""
    out: list[Any] = []
    for value in values:
        if value is None:
            out.append(None)
            continue
        item = value.item() if hasattr(value, "item") and not isinstance(value, str) else value
        missing = isinstance(item, float) and not math.isfinite(item)
        if missing or type(item).__name__ in ("NAType", "NaTType"):
            out.append(None)
        else:
            out.append(item)
    return out


def _request_fields(project: Project, events: pa.Table, store: Any, service: Any) -> list[str]:
    from modelops.integrations import feast as feast_io

    fields = feast_io.service_request_fields(store, service)
    missing = [f for f in fields if f not in events.column_names]
    if missing:
        raise SimulationError(
            f"{project.spec_file}: field 'label.request_columns' lacks {missing}, needed by "
            f"feature service '{project.spec.feature_service}'"
        )
    return fields


def _in_process(
    settings: Settings,
    project: Project,
    events: pa.Table,
    environment: str,
    served: _Served,
    shadow: _Served | None,
    run_tag: str,
) -> tuple[int, int, int]:
    """Join, score, decide and log every event; returns (logged, fallbacks, refused)."""
    import numpy as np

    from modelops.integrations import feast as feast_io
    from modelops.services.context import feature_repo
    from modelops.serving.prediction_log import PredictionLog, PredictionRecord, open_sink

    spec = project.spec
    if len(events) == 0:
        return 0, 0, 0
    store = feast_io.open_store(feature_repo(settings))
    service = feast_io.feature_service(store, spec.feature_service)
    request_names = _request_fields(project, events, store, service)
    stored = [f for f in feast_io.batch_features(store, service)]
    frame = events.select([spec.entity, spec.label.timestamp, *request_names]).to_pandas()
    frame = frame.rename(columns={spec.label.timestamp: EVENT_TIME})
    joined = feast_io.historical_features(store, service, frame)
    names = list(served.scorer.feature_names)
    absent = [n for n in names if n not in joined.columns]
    if absent:
        raise SimulationError(
            f"{spec.registered_model} v{served.version} needs {absent}, which feature service "
            f"'{spec.feature_service}' does not give"
        )
    present_stored = [f for f in stored if f in joined.columns]
    if present_stored:
        missing_rows = joined[present_stored].isna().all(axis=1).to_numpy()
    else:
        missing_rows = np.zeros(len(joined), dtype=bool)
    policy = spec.serving.missing_features
    times = [t.to_pydatetime() for t in frame[EVENT_TIME]]
    entities = _plain(frame[spec.entity].tolist())
    requests = {n: _plain(frame[n].tolist()) for n in request_names}
    values = {n: _plain(joined[n].astype(object).tolist()) for n in names}
    scoring = np.flatnonzero(~missing_rows)
    scores = np.full(len(joined), np.nan)
    if len(scoring):
        columns = {n: joined[n].to_numpy()[scoring] for n in names}
        scores[scoring] = served.scorer.score_columns(columns)
    writer = PredictionLog(
        open_sink(settings.resolved_prediction_log),
        flush_rows=LOG_CHUNK,
        flush_seconds=3600.0,
        max_queue=LOG_CHUNK + 1,
    )
    logged = fallbacks = refused = 0
    try:
        records: list[PredictionRecord] = []
        for i in range(len(joined)):
            if missing_rows[i]:
                if policy != "fallback":
                    refused += 1  # the service answers 404 and logs nothing
                    continue
                fallbacks += 1
                scored: dict[str, Any] = {
                    "features": None,
                    "score": None,
                    "decision": spec.serving.fallback_decision or "",
                    "fallback": True,
                }
            else:
                score = float(scores[i])
                scored = {
                    "features": {n: values[n][i] for n in names},
                    "score": score,
                    "decision": served.policy.decide(score),
                }
            record = PredictionRecord(
                request_id=f"{run_tag}-{i}",
                logged_at=times[i],
                project=spec.name,
                model_version=served.version,
                entity={spec.entity: entities[i]},
                request={n: requests[n][i] for n in request_names},
                environment=environment,
                endpoint="predict_batch",
                **scored,
            )
            records.append(record)
            if len(records) >= LOG_CHUNK:
                logged += _submit(writer, records, shadow)
                records = []
        logged += _submit(writer, records, shadow)
    finally:
        writer.close(timeout=120)
    stats = writer.stats
    if stats.dropped or stats.failed:
        raise SimulationError(
            f"prediction log {settings.resolved_prediction_log}: {stats.dropped} rows dropped and "
            f"{stats.failed} failed of {stats.submitted}; see the log above"
        )
    return logged, fallbacks, refused


def _submit(writer: Any, records: list[Any], shadow: _Served | None) -> int:
    if not records:
        return 0
    submitted = int(writer.submit_many(records, shadow))
    if not writer.flush(timeout=300):
        raise SimulationError("prediction log: the writer did not finish within 300 s")
    return submitted


# ----------------------------------------------------------------------------- service


def _batches(entities: Sequence[Any], limit: int) -> Iterator[tuple[int, int]]:
    """``[lo, hi)`` of consecutive batches of at most ``limit`` rows, each entity at most once
    (the monitor joins a label to the nearest logged time of its entity)."""
    lo = 0
    seen: set[Any] = set()
    for i, key in enumerate(entities):
        if i - lo >= limit or key in seen:
            yield lo, i
            lo, seen = i, set()
        seen.add(key)
    if lo < len(entities):
        yield lo, len(entities)


def _post(url: str, body: dict[str, Any], timeout: float) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            payload = json.loads(exc.read() or b"{}")
        except ValueError:
            payload = {}
        return exc.code, payload if isinstance(payload, dict) else {}
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise SimulationError(f"--through-service {url}: {exc}") from exc


def _through_service(
    url: str,
    project: Project,
    events: pa.Table,
    request_names: list[str],
    run_tag: str,
    timeout: float,
) -> tuple[int, int, int, list[datetime], set[str]]:
    """POST the events in batches; returns (answered, fallbacks, refused, the time each event
    was answered, the versions that answered)."""
    spec = project.spec
    endpoint = url.rstrip("/") + "/predict_batch"
    entities = _plain(events[spec.entity].to_pylist())
    columns = {n: _plain(events[n].to_pylist()) for n in request_names}
    answered_at: list[datetime] = []
    answered = fallbacks = refused = 0
    versions: set[str] = set()
    for number, (lo, hi) in enumerate(_batches(entities, spec.serving.max_batch)):
        items = [
            {spec.entity: entities[i], **{n: columns[n][i] for n in request_names}}
            for i in range(lo, hi)
        ]
        status, body = _post(
            endpoint, {"request_id": f"{run_tag}-b{number}", "entities": items}, timeout
        )
        now = datetime.now(UTC)
        answered_at.extend([now] * (hi - lo))
        if status == 200:
            predictions = body.get("predictions") or []
            answered += len(predictions)
            fallbacks += sum(1 for p in predictions if p.get("fallback"))
            if body.get("model_version"):
                versions.add(str(body["model_version"]))
            continue
        if status in (404, 503):  # no online features (policy 'error'), or a dependency down
            refused += hi - lo
            continue
        raise SimulationError(
            f"--through-service {endpoint}: HTTP {status}: {body.get('error') or body}"
        )
    return answered, fallbacks, refused, answered_at, versions


def _restamp(events: pa.Table, project: Project, answered_at: list[datetime]) -> pa.Table:
    """Labels at the time the service answered, each keeping its generated delay."""
    import pyarrow as pa
    import pyarrow.compute as pc

    label = project.spec.label
    stamp = events[label.timestamp]
    new = pa.array(answered_at, type=stamp.type)
    out = events.set_column(events.column_names.index(label.timestamp), label.timestamp, new)
    if label.available_at and label.available_at in events.column_names:
        delay = pc.subtract(events[label.available_at], stamp)
        known = pc.add(new, delay)
        index = out.column_names.index(label.available_at)
        out = out.set_column(index, label.available_at, known.cast(stamp.type))
    return out


def _deploy(settings: Settings, project: str, environment: str, actor: str | None) -> str:
    """The GitOps commit of the new holder, as after any promotion (``modelops deploy``), so
    that the rollback has a commit to undo; a failure is reported, never raised (the ledger is
    the truth, and ``modelops deploy`` writes the commit later)."""
    from modelops.services import deploy

    try:
        result = deploy.deploy(settings, project, environment, actor=actor)
    except ModelopsError as exc:
        return f"GitOps not updated ({exc}); run 'modelops deploy {project} --env {environment}'"
    return f"GitOps commit {result.commit[:12]}" if result.commit else "GitOps already up to date"


def _materialize(settings: Settings, end: datetime) -> None:
    from modelops.services import features as features_service

    features_service.materialize(settings, end)


# ----------------------------------------------------------------------------- the drill


def _drill(
    settings: Settings,
    project: Project,
    environment: str,
    traffic: str,
    bad_version: str | None,
    approver: str,
    actor: str | None,
) -> Drill:
    """Put a version into ``environment`` the way every version gets there: gate, approval,
    ledger. Raises :class:`DrillRefusedError` when the gate or a promotion rule refuses."""
    from modelops.services import gate, promote, train

    spec = project.spec
    ledger = ledger_for(settings)
    previous = ledger.holder(spec.name, environment).version
    if previous is None:
        raise SimulationError(
            f"--scenario {BAD_MODEL}: nothing holds {environment} for {spec.name}; promote a good "
            "version first, so that the drill has one to roll back to"
        )
    trained = bad_version is None
    if bad_version is None:
        # Trained as the holder was (its windows, its training time), so the gate judges it on
        # the same holdout and it can pass; what makes it bad is the traffic that follows. Both
        # versions of the run are offered, the candidate first: the gate lets at most one
        # through when it compares them with the same holder.
        from modelops.services.monitor import read_lineage

        held = read_lineage(settings, project, previous)
        result = train.train(settings, spec.name, as_of=held.as_of, windows=held.windows)
        offered = [result.candidate.version, result.baseline.version]
    else:
        offered = [str(bad_version)]
    if previous in offered:
        raise SimulationError(
            f"--bad-version {previous}: already holds {environment}; the drill needs another"
        )
    required = approval_required(settings, project)
    order = list(settings.environments)
    refusals: list[str] = []
    for version in offered:
        reason = (
            f"simulation: bad-model drill: v{version} is promoted on purpose ahead of "
            f"{traffic} traffic it was not trained for, to exercise the automatic rollback to "
            f"v{previous}; not a release"
        )
        verdicts: dict[str, str] = {}
        moves: dict[str, int] = {}
        for env in order[: order.index(environment) + 1]:
            if env != environment and version in ledger.past_holders(spec.name, env):
                continue
            verdict = gate.validate(settings, spec.name, version, against=env, actor=actor)
            if not verdict.passed:
                refusals.append(
                    f"v{version} against {env} (verdict {verdict.id}: "
                    f"{', '.join(verdict.failed_rules) or 'failed'})"
                )
                break
            verdicts[env] = verdict.id
            needs = env in required
            try:
                move = promote.promote(
                    settings,
                    spec.name,
                    version,
                    env,
                    approve=needs,
                    approver=approver if needs else actor,
                    reason=reason,
                )
            except promote.PromotionRefusedError as exc:
                raise DrillRefusedError(f"{exc} (the refusal is in the ledger)") from exc
            moves[env] = move.entry.seq
        else:
            gitops = _deploy(settings, spec.name, environment, actor)
            from modelops.services.deploy import is_deployed

            below = [e for e in moves if e != environment and is_deployed(settings, spec.name, e)]
            for env in below:  # GitOps keeps agreeing with the ledger everywhere it deploys
                gitops += f"; {env}: {_deploy(settings, spec.name, env, actor)}"
            return Drill(previous, version, trained, verdicts, moves, approver, reason, gitops)
        if moves:  # already promoted somewhere: never switch versions half-way
            break
    raise DrillRefusedError(
        f"the gate refused {'; '.join(refusals)}; a drill never bypasses it: pass --bad-version "
        "with a version that passes the gate on the holdout"
    )


# ----------------------------------------------------------------------------- simulate


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
    approver: str | None = None,
    actor: str | None = None,
    materialize: bool | None = None,
    timeout: float = 30.0,
) -> SimulationResult:
    """Simulate ``days`` of ``environment``'s traffic and the labels that follow; see the
    module docstring.

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
        approver: ``bad-model``: who approves (default :data:`DRILL_APPROVER`).
        materialize: load the period's feature rows into the online store (incrementally, as
            ``modelops features materialize``): through a service before the first request, up
            to the period's end or now, whichever is earlier; in process after the traffic, up
            to the period's end (the simulated clock), so that a local service and its
            package checks see the entities. Default: through a service only.

    Raises:
        SimulationError: no generator, no data to continue, an overlapping period, a service
            that answers with an error.
        DrillRefusedError: ``bad-model``: the gate or a promotion rule refused the version.
    """
    import pyarrow.compute as pc

    started = time.perf_counter()
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
    project = project_for(settings, project_name)
    spec = project.spec
    module = _load_module(settings, project)
    label_path = _existing(settings, project, spec.label.table)
    notes: list[str] = []
    if start is None:
        if through_service is None:
            start = default_start(settings, project)
        else:
            start = datetime.now(UTC).date() - timedelta(days=days)
    elif through_service is None:
        _check_overlap(settings, project, start)
    traffic = drill_traffic if scenario == BAD_MODEL else scenario

    drill = None
    if scenario == BAD_MODEL:
        drill = _drill(
            settings,
            project,
            environment,
            traffic,
            bad_version,
            approver or DRILL_APPROVER,
            actor,
        )
    holder = ledger_for(settings).holder(spec.name, environment).version
    if through_service is None and holder is None:
        raise SimulationError(
            f"nothing holds {environment} for {spec.name}: no version to score the traffic "
            f"with; promote one first (or --through-service a running service)"
        )

    period = generate_period(
        module,
        project,
        traffic,
        start,
        days,
        rate=rate,
        seed=seed,
        keep_days=_keep_days(settings, project),
    )
    offset = _entity_offset(settings, project, period)
    events = _shift(period.events, spec.entity, offset)
    feature_paths: list[Path] = []
    for name, table in period.features.items():
        path = _existing(settings, project, name)
        _append(path, _shift(table, spec.entity, offset))
        feature_paths.append(path)

    run_tag = f"sim-{period.start:%Y%m%d}-{uuid.uuid4().hex[:8]}"
    shadow_version = None
    served_versions: tuple[str, ...] = ()
    if through_service is None:
        assert holder is not None
        served = _load_version(settings, project, holder)
        shadow_model = None
        if shadow is not None and str(shadow) != holder:
            shadow_model = _load_version(settings, project, str(shadow))
            shadow_version = shadow_model.version
        logged, fallbacks, refused = _in_process(
            settings, project, events, environment, served, shadow_model, run_tag
        )
        served_versions = (holder,)
        labels = events
        if materialize:
            _materialize(settings, _day_start(period.end + timedelta(days=1)))
    else:
        from modelops.integrations import feast as feast_io
        from modelops.services.context import feature_repo

        if materialize is None or materialize:
            _materialize(
                settings, min(_day_start(period.end + timedelta(days=1)), datetime.now(UTC))
            )
        store = feast_io.open_store(feature_repo(settings))
        service = feast_io.feature_service(store, spec.feature_service)
        request_names = _request_fields(project, events, store, service)
        logged, fallbacks, refused, answered_at, versions = _through_service(
            through_service, project, events, request_names, run_tag, timeout
        )
        served_versions = tuple(sorted(versions))
        labels = _restamp(events, project, answered_at)
        notes.append(
            "labels are stamped with the time the service answered (the time it logged), "
            "keeping their generated delays"
        )
    _append(label_path, labels)

    known_from = known_until = None
    if spec.label.available_at and spec.label.available_at in labels.column_names and len(labels):
        bounds = pc.min_max(labels[spec.label.available_at]).as_py()
        known_from, known_until = bounds["min"], bounds["max"]
    positives = 0
    if spec.label.column in labels.column_names and len(labels):
        positives = int(pc.sum(pc.cast(labels[spec.label.column], "int64")).as_py() or 0)
    if refused:
        notes.append(
            f"{refused} events were not scored: no features for their entity (serving."
            f"missing_features is '{spec.serving.missing_features}') or the service refused"
        )
    return SimulationResult(
        project=spec.name,
        scenario=scenario,
        traffic=traffic,
        environment=environment,
        seed=seed,
        start=period.start,
        end=period.end,
        drift_start=period.drift_start,
        rate=period.rate,
        events=len(events),
        logged=logged,
        fallbacks=fallbacks,
        refused=refused,
        labels=len(labels),
        positives=positives,
        served_versions=served_versions,
        shadow_version=shadow_version,
        drill=drill,
        through_service=through_service,
        entity_offset=offset,
        label_table=label_path,
        feature_tables=tuple(feature_paths),
        prediction_log=settings.resolved_prediction_log,
        labels_known_from=known_from,
        labels_known_until=known_until,
        seconds=round(time.perf_counter() - started, 3),
        notes=tuple(notes),
    )


# ----------------------------------------------------------------------------- reaction time


@dataclass(frozen=True)
class Reaction:
    """Seconds from the start of the first monitor run that held the evidence to each step of
    the previous version serving again (None: not reached or not measured)."""

    project: str
    environment: str
    bad_version: str
    previous_version: str | None
    run_id: str | None
    run_started_at: datetime | None
    as_of: datetime | None
    runs: tuple[tuple[str, datetime, str], ...]
    """Every monitor run made: (run id, as_of, decision headline)."""
    evidence_s: float | None = None
    """The run decided to roll back (its own timings, up to the decision)."""
    ledger_s: float | None = None
    """The rollback entry recorded (the ledger's timestamp)."""
    alias_s: float | None = None
    """The MLflow alias back on the previous version: an upper bound, the moment the GitOps
    values file was rewritten (the alias moves before the GitOps step starts)."""
    gitops_s: float | None = None
    """The GitOps commit on the repository's branch."""
    service_s: float | None = None
    """The local service reports the previous version (``/metrics`` ``modelops_model_info``)."""
    run_seconds: float | None = None
    target_s: float = REACTION_TARGET_S
    notes: tuple[str, ...] = ()

    @property
    def total_s(self) -> float | None:
        """Up to the previous version serving: the service step when one was watched, else the
        GitOps commit (what a cluster's Argo CD syncs from)."""
        return self.service_s if self.service_s is not None else self.gitops_s

    @property
    def within_target(self) -> bool:
        return self.total_s is not None and self.total_s <= self.target_s

    @property
    def steps(self) -> dict[str, float | None]:
        return {
            "evidence": self.evidence_s,
            "ledger": self.ledger_s,
            "alias": self.alias_s,
            "gitops_commit": self.gitops_s,
            "service_reloaded": self.service_s,
        }


_INFO = re.compile(r"^modelops_model_info\{([^}]*)\}\s+([0-9.eE+-]+)\s*$", re.MULTILINE)


def service_version(url: str, timeout: float = 2.0) -> str | None:
    """The version a running service reports serving (``modelops_model_info`` = 1 on
    ``/metrics``), None when it does not answer or is not ready (``/readyz``)."""
    base = url.rstrip("/")
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=timeout) as ready:
            if ready.status != 200:
                return None
        with urllib.request.urlopen(f"{base}/metrics", timeout=timeout) as response:
            text = response.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    for labels, value in _INFO.findall(text):
        if float(value) >= 1:
            found = re.search(r'model_version="([^"]*)"', labels)
            if found:
                return found.group(1)
    return None


class _Watcher(threading.Thread):
    """Polls, from the moment it starts, the GitOps branch, the environment's values file and
    the local service; records the first moment each shows the rollback."""

    def __init__(
        self, settings: Settings, project: str, environment: str, target: str, url: str | None
    ) -> None:
        from modelops.core.release import values_path

        super().__init__(name="reaction-watch", daemon=True)
        self.repo = settings.resolved_gitops_repo
        self.values = self.repo / values_path(environment, project)
        self.target = target
        self.url = url
        self.seen: dict[str, datetime] = {}
        self._stop_event = threading.Event()
        self._head = self._ref()
        self._values = self._read_values()
        self.served_before = service_version(url) if url else None

    def _ref(self) -> str | None:
        head = self.repo / ".git" / "HEAD"
        try:
            text = head.read_text().strip()
            if text.startswith("ref: "):
                ref = self.repo / ".git" / text[5:]
                if ref.is_file():
                    return ref.read_text().strip()
                packed = self.repo / ".git" / "packed-refs"
                for line in packed.read_text().splitlines() if packed.is_file() else []:
                    if line.endswith(" " + text[5:]):
                        return line.split(" ", 1)[0]
                return None
            return text
        except OSError:
            return None

    def _read_values(self) -> str | None:
        try:
            return self.values.read_text()
        except OSError:
            return None

    def _mark(self, step: str) -> None:
        self.seen.setdefault(step, datetime.now(UTC))

    def _shows_target(self, text: str | None) -> bool:
        pattern = rf"^modelVersion:\s*['\"]?{re.escape(self.target)}['\"]?\s*$"
        return text is not None and re.search(pattern, text, re.M) is not None

    def run(self) -> None:
        polls = 0
        while not self._stop_event.is_set():
            if "values" not in self.seen:
                text = self._read_values()
                if text != self._values and self._shows_target(text):
                    self._mark("values")
            if "gitops" not in self.seen:
                ref = self._ref()
                if ref is not None and ref != self._head:
                    self._mark("gitops")
                    if self._shows_target(self._read_values()):
                        self._mark("values")
            if (
                self.url
                and "service" not in self.seen
                and polls % 3 == 0
                and service_version(self.url, timeout=1.0) == self.target
            ):
                self._mark("service")
            polls += 1
            if "gitops" in self.seen and (not self.url or "service" in self.seen):
                return
            self._stop_event.wait(0.1)

    def stop(self) -> None:
        self._stop_event.set()


def _labels_enough_from(
    settings: Settings, project: Project, environment: str, version: str, since: datetime
) -> datetime | None:
    """The earliest time by which ``version``'s logged predictions (since ``since``) have as
    many labels known, on predictions old enough to be judged (``monitor.label_maturity``), as
    the monitoring policy needs to judge performance; None if never.

    A cheap pre-scan of the log and the label table: monitor runs before that moment cannot
    hold performance evidence, so :func:`measure_reaction` starts there.
    """
    import numpy as np
    import pandas as pd

    from modelops.services import prediction_log
    from modelops.services.datasets import read_labels

    spec, policy = project.spec, project.spec.monitoring
    logged = prediction_log.read(
        settings, since, datetime.now(UTC) + timedelta(days=3650), project=spec.name
    )
    if logged.empty:
        return None
    logged = logged[(logged["model_version"] == version) & logged["score"].notna()]
    if "environment" in logged.columns:
        logged = logged[logged["environment"].isna() | (logged["environment"] == environment)]
    if spec.entity not in logged.columns or logged.empty:
        return None
    labels = read_labels(settings, project)
    stamp, known = spec.label.timestamp, spec.label.available_at
    right = pd.DataFrame(
        {
            "_key": labels[spec.entity].astype(str).to_numpy(),
            "_t": pd.to_datetime(labels[stamp], utc=True).astype("datetime64[ns, UTC]"),
            "_known": pd.to_datetime(labels[known if known else stamp], utc=True).astype(
                "datetime64[ns, UTC]"
            ),
            "_y": labels[spec.label.column].astype("int64").to_numpy(),
        }
    ).sort_values("_t", kind="stable")
    left = pd.DataFrame(
        {
            "_key": logged[spec.entity].astype(str).to_numpy(),
            "_t": pd.to_datetime(logged["logged_at"], utc=True).astype("datetime64[ns, UTC]"),
        }
    ).sort_values("_t", kind="stable")
    merged = pd.merge_asof(
        left,
        right,
        on="_t",
        by="_key",
        tolerance=pd.Timedelta(seconds=policy.label_join_tolerance_seconds),
        direction="nearest",
    ).dropna(subset=["_y"])
    if merged.empty:
        return None
    from modelops.services.monitor import label_maturity

    maturity, _ = label_maturity(project, labels)
    merged["_known"] = merged["_known"].where(
        merged["_known"] >= merged["_t"] + maturity, merged["_t"] + maturity
    )  # the monitor judges a prediction once its label is known and it is mature
    merged = merged.sort_values("_known", kind="stable")
    positives = np.cumsum(merged["_y"].to_numpy())
    rows = np.arange(1, len(merged) + 1)
    ok = (
        (rows >= policy.min_labels)
        & (positives >= policy.min_positives)
        & (rows - positives >= policy.min_positives)
    )
    hits = np.flatnonzero(ok)
    if not len(hits):
        return None
    return pd.Timestamp(merged["_known"].iloc[int(hits[0])]).to_pydatetime()


def measure_reaction(
    settings: Settings,
    project_name: str,
    *,
    environment: str = "production",
    first_as_of: datetime | None = None,
    last_as_of: datetime | None = None,
    step: timedelta = timedelta(days=1),
    max_runs: int = 30,
    service_url: str | None = None,
    service_timeout: float = 60.0,
    actor: str | None = None,
    push: bool = False,
) -> Reaction:
    """After a bad-model drill: run the monitor (``services.monitor.run``) at ``first_as_of``,
    then every ``step`` of simulated time, until a run rolls back; time each step from that
    run's start to the previous version serving again (see :class:`Reaction`).

    Args:
        first_as_of: the first run's time; default the moment enough labels of the serving
            version's predictions are known (earlier runs cannot hold performance evidence).
        last_as_of: no run after this time; default ``first_as_of`` plus ``max_runs`` steps.
        service_url: a local service (``modelops serve --reload-on-promotion``) to watch until
            it reports the previous version; None: the reload is not measured.
        service_timeout: how long to wait for the service after the run, in seconds.

    Raises:
        MonitorError: a monitor run could not run.
        SimulationError: nothing holds ``environment``, or no earlier version to return to.
    """
    from modelops.core import monitoring as policy_core
    from modelops.integrations import mlflow as mlflow_io
    from modelops.services import monitor

    check_environment(settings, environment)
    project = project_for(settings, project_name)
    spec = project.spec
    ledger = ledger_for(settings)
    bad = ledger.holder(spec.name, environment).version
    if bad is None:
        raise SimulationError(f"nothing holds {environment} for {spec.name}: nothing to measure")
    past = [v for v in ledger.past_holders(spec.name, environment) if v != bad]
    previous = past[0] if past else None
    if previous is None:
        raise SimulationError(
            f"v{bad} is the only version that ever held {environment}: no rollback to measure"
        )
    notes: list[str] = []
    moves = [e for e in ledger.entries(spec.name, environment) if e.action == "promote"]
    since = moves[-1].at if moves else datetime(1970, 1, 1, tzinfo=UTC)
    as_of = first_as_of
    if as_of is None:
        as_of = _labels_enough_from(
            settings, project, environment, bad, since - timedelta(days=3650)
        )
        if as_of is None:
            raise SimulationError(
                f"v{bad}'s logged predictions never get {spec.monitoring.min_labels} labels with "
                f"{spec.monitoring.min_positives} of each class (monitoring.min_labels, "
                "min_positives): simulate more days or a higher --rate"
            )
        as_of += timedelta(seconds=1)
    limit = last_as_of or as_of + step * max_runs
    runs: list[tuple[str, datetime, str]] = []
    for _ in range(max_runs):
        if as_of > limit:
            break
        watcher = _Watcher(settings, spec.name, environment, previous, service_url)
        watcher.start()
        try:
            run = monitor.run(
                settings, spec.name, environment=environment, as_of=as_of, actor=actor, push=push
            )
        except BaseException:
            watcher.stop()
            raise
        runs.append((run.run_id, as_of, run.decision.headline()))
        rolled = next((o for o in run.outcomes if o.kind == policy_core.ROLLBACK and o.done), None)
        if rolled is None:
            watcher.stop()
            watcher.join(5)
            as_of += step
            continue
        watcher.join(service_timeout if service_url else 10.0)
        watcher.stop()
        start = run.started_at
        laps = list(run.timings.items())
        decided = 0.0
        for name, seconds in laps:
            decided += seconds
            if name == "decide":
                break

        def since_start(moment: datetime | None, start: datetime = start) -> float | None:
            return None if moment is None else round((moment - start).total_seconds(), 3)

        entry = next(
            (e for e in ledger.entries(spec.name, environment) if e.seq == rolled.ledger_seq),
            None,
        )
        with mlflow_io.session(tracking(settings)) as client:
            alias = mlflow_io.aliases(client, spec.registered_model).get(environment)
        if alias != previous:
            notes.append(
                f"the MLflow alias '{environment}' is on v{alias}, not v{previous}: it lags the "
                "ledger (run 'modelops models sync')"
            )
        gitops_at = watcher.seen.get("gitops")
        if gitops_at is None:
            notes.append(f"no GitOps commit seen: {rolled.details.get('gitops', rolled.detail)}")
        if service_url and watcher.served_before == previous:
            notes.append(
                f"{service_url} already served v{previous} before the run (it never took "
                f"v{bad}): its reload was not measured"
            )
            watcher.seen.pop("service", None)
        elif service_url and "service" not in watcher.seen:
            notes.append(
                f"{service_url} did not report v{previous} within {service_timeout:g} s after the "
                "run (is it running with --reload-on-promotion?)"
            )
        if not service_url:
            notes.append("no local service given: the reload step was not measured")
        return Reaction(
            project=spec.name,
            environment=environment,
            bad_version=bad,
            previous_version=previous,
            run_id=run.run_id,
            run_started_at=start,
            as_of=as_of,
            runs=tuple(runs),
            evidence_s=round(decided, 3),
            ledger_s=since_start(entry.at if entry else None),
            alias_s=since_start(watcher.seen.get("values")) if alias == previous else None,
            gitops_s=since_start(gitops_at),
            service_s=since_start(watcher.seen.get("service")),
            run_seconds=run.seconds,
            notes=tuple(notes),
        )
    first_run = runs[0][1] if runs else as_of
    notes.append(
        f"no monitor run from {first_run:%Y-%m-%d %H:%M} to {limit:%Y-%m-%d %H:%M} rolled back"
    )
    return Reaction(
        project=spec.name,
        environment=environment,
        bad_version=bad,
        previous_version=previous,
        run_id=None,
        run_started_at=None,
        as_of=None,
        runs=tuple(runs),
        notes=tuple(notes),
    )
