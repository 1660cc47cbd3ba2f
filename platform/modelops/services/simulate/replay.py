"""Traffic replayed in process: each event joined point-in-time with the feature service,
scored by the verified artifact of the version holding the environment, decided with the
project's policy and written through the service's own prediction-log writer."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelops.config.project import Project
from modelops.config.settings import Settings
from modelops.core import tags
from modelops.services.context import tracking
from modelops.services.simulate.errors import SimulationError
from modelops.services.simulate.period import EVENT_TIME, plain
from modelops.services.simulate.sources import request_fields

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from modelops.core.scorer import Scorer
    from modelops.serving.policy import DecisionPolicy
    from modelops.serving.prediction_log import PredictionLog, PredictionRecord

LOG_CHUNK = 20_000


@dataclass(frozen=True)
class Served:
    """A verified registered version, as the service holds it (and as the writer's shadow)."""

    version: str
    scorer: Scorer
    policy: DecisionPolicy


def load_version(settings: Settings, project: Project, version: str) -> Served:
    """``version``'s verified artifact, its features and its decision policy."""
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
    return Served(str(version), scorer, policy)


@dataclass(frozen=True)
class _Joined:
    """The events (entity, time, request fields) and their point-in-time features."""

    frame: pd.DataFrame
    joined: pd.DataFrame
    request_names: list[str]
    missing: np.ndarray
    """Rows without any stored feature (the service finds no online row for them)."""


def _join(settings: Settings, project: Project, events: pa.Table, served: Served) -> _Joined:
    import numpy as np

    from modelops.integrations import feast as feast_io
    from modelops.services.context import feature_repo

    spec = project.spec
    store = feast_io.open_store(feature_repo(settings))
    service = feast_io.feature_service(store, spec.feature_service)
    request_names = request_fields(project, events, store, service)
    stored = [f for f in feast_io.batch_features(store, service)]
    frame = events.select([spec.entity, spec.label.timestamp, *request_names]).to_pandas()
    frame = frame.rename(columns={spec.label.timestamp: EVENT_TIME})
    joined = feast_io.historical_features(store, service, frame)
    absent = [n for n in served.scorer.feature_names if n not in joined.columns]
    if absent:
        raise SimulationError(
            f"{spec.registered_model} v{served.version} needs {absent}, which feature service "
            f"'{spec.feature_service}' does not give"
        )
    present_stored = [f for f in stored if f in joined.columns]
    if present_stored:
        missing = joined[present_stored].isna().all(axis=1).to_numpy()
    else:
        missing = np.zeros(len(joined), dtype=bool)
    return _Joined(frame, joined, request_names, missing)


def _scores(data: _Joined, served: Served) -> np.ndarray:
    """The scores of the rows with features (NaN for the others)."""
    import numpy as np

    scoring = np.flatnonzero(~data.missing)
    scores = np.full(len(data.joined), np.nan)
    if len(scoring):
        columns = {n: data.joined[n].to_numpy()[scoring] for n in served.scorer.feature_names}
        scores[scoring] = served.scorer.score_columns(columns)
    return scores


def _records(
    project: Project,
    data: _Joined,
    served: Served,
    scores: np.ndarray,
    environment: str,
    run_tag: str,
) -> Iterator[PredictionRecord]:
    """The log rows the service would write, stamped with each event's time; rows without
    features are fallbacks, or skipped (the service answers 404 and logs nothing)."""
    from modelops.serving.prediction_log import PredictionRecord

    spec = project.spec
    names = list(served.scorer.feature_names)
    frame, joined = data.frame, data.joined
    times = [t.to_pydatetime() for t in frame[EVENT_TIME]]
    entities = plain(frame[spec.entity].tolist())
    requests = {n: plain(frame[n].tolist()) for n in data.request_names}
    values = {n: plain(joined[n].astype(object).tolist()) for n in names}
    fallback = spec.serving.missing_features == "fallback"
    for i in range(len(joined)):
        if data.missing[i]:
            if not fallback:
                continue
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
        yield PredictionRecord(
            request_id=f"{run_tag}-{i}",
            logged_at=times[i],
            project=spec.name,
            model_version=served.version,
            entity={spec.entity: entities[i]},
            request={n: requests[n][i] for n in data.request_names},
            environment=environment,
            endpoint="predict_batch",
            **scored,
        )


def _write(settings: Settings, records: Iterator[PredictionRecord], shadow: Served | None) -> int:
    """Write ``records`` in chunks of :data:`LOG_CHUNK` through the service's writer."""
    from modelops.serving.prediction_log import PredictionLog, open_sink

    writer = PredictionLog(
        open_sink(settings.resolved_prediction_log),
        flush_rows=LOG_CHUNK,
        flush_seconds=3600.0,
        max_queue=LOG_CHUNK + 1,
    )
    logged = 0
    try:
        chunk: list[PredictionRecord] = []
        for record in records:
            chunk.append(record)
            if len(chunk) >= LOG_CHUNK:
                logged += _submit(writer, chunk, shadow)
                chunk = []
        logged += _submit(writer, chunk, shadow)
    finally:
        writer.close(timeout=120)
    stats = writer.stats
    if stats.dropped or stats.failed:
        raise SimulationError(
            f"prediction log {settings.resolved_prediction_log}: {stats.dropped} rows dropped and "
            f"{stats.failed} failed of {stats.submitted}; see the log above"
        )
    return logged


def _submit(writer: PredictionLog, records: list[PredictionRecord], shadow: Served | None) -> int:
    if not records:
        return 0
    submitted = int(writer.submit_many(records, shadow))
    if not writer.flush(timeout=300):
        raise SimulationError("prediction log: the writer did not finish within 300 s")
    return submitted


def in_process(
    settings: Settings,
    project: Project,
    events: pa.Table,
    environment: str,
    served: Served,
    shadow: Served | None,
    run_tag: str,
) -> tuple[int, int, int]:
    """Join, score, decide and log every event; returns (logged, fallbacks, refused)."""
    if len(events) == 0:
        return 0, 0, 0
    data = _join(settings, project, events, served)
    unscored = int(data.missing.sum())
    fallback = project.spec.serving.missing_features == "fallback"
    fallbacks, refused = (unscored, 0) if fallback else (0, unscored)
    scores = _scores(data, served)
    records = _records(project, data, served, scores, environment, run_tag)
    return _write(settings, records, shadow), fallbacks, refused
