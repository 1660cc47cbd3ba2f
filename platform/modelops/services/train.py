"""``modelops train``: point-in-time training set, time split, fit, evaluate, register.

The service owns the wiring; the project's ``train.py`` owns the modelling (pure functions
``build_features``, ``fit`` and ``fit_baseline``). Nothing is registered unless every check
passed and both models trained.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from modelops.config.project import Project, ProjectSpec, load_project
from modelops.config.settings import Settings
from modelops.core.errors import ConfigError, DataError
from modelops.core.fingerprint import DatasetFingerprint, fingerprint
from modelops.core.metrics import (
    CostModel,
    choose_threshold,
    classification_metrics,
    describe_in_business_terms,
    segment_metrics,
)
from modelops.core.modeling import feature_importance
from modelops.core.splits import WINDOWS, TimeWindow, assign_windows
from modelops.integrations import feast as feast_io
from modelops.integrations import git as git_io
from modelops.integrations import mlflow as mlflow_io
from modelops.services.context import feature_repo, prepare_state, tracking

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

REQUIRED_FUNCTIONS = ("build_features", "fit", "fit_baseline")
JOIN_CACHE_SIZE = 8  # holdout joins kept for the next validations; one per holdout in use
TAG = "modelops"


@dataclass(frozen=True)
class TrainingSet:
    """Labelled rows joined with their point-in-time features, split by time."""

    frames: dict[str, pd.DataFrame]
    features: list[str]
    request_fields: list[str]
    fingerprints: dict[str, DatasetFingerprint]
    unlabelled_rows: int


@dataclass(frozen=True)
class TrainedVersion:
    role: str
    version: str
    run_id: str
    threshold: float
    metrics: dict[str, float]
    summary: str


@dataclass(frozen=True)
class TrainResult:
    project: str
    model_name: str
    candidate: TrainedVersion
    baseline: TrainedVersion
    training_rows: int
    seconds: float
    notes: list[str] = field(default_factory=list)


def load_train_module(project: Project) -> ModuleType:
    """Import ``projects/<name>/train.py`` under a private name and check its functions."""
    path = project.train_module
    spec = importlib.util.spec_from_file_location(f"modelops_project_{project.spec.name}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError(f"{path}: fails to import: {type(exc).__name__}: {exc}") from exc
    missing = [name for name in REQUIRED_FUNCTIONS if not callable(getattr(module, name, None))]
    if missing:
        raise ConfigError(f"{path}: missing function(s) {', '.join(missing)}")
    return module


def read_labels(settings: Settings, project: Project) -> pd.DataFrame:
    import pandas as pd

    label = project.spec.label
    path = settings.data_dir / f"{label.table}.parquet"
    if not path.is_file():
        raise DataError(
            f"label table {path} not found (project.yaml field 'label.table' = '{label.table}'); "
            f"run 'modelops data generate --project {project.spec.name}'"
        )
    columns = [project.spec.entity, label.timestamp, label.column, *label.request_columns]
    if label.available_at:
        columns.append(label.available_at)
    columns += [c for c in project.spec.segments if c not in columns]
    available = _parquet_columns(path)
    absent = [c for c in columns if c not in available]
    # Segment columns may come from the feature store instead of the label table.
    absent_required = [c for c in absent if c not in project.spec.segments]
    if absent_required:
        raise DataError(
            f"{path}: missing column(s) {', '.join(absent_required)} named in {project.spec_file}"
        )
    return pd.read_parquet(path, columns=[c for c in columns if c not in absent])


def _parquet_columns(path: Any) -> set[str]:
    import pyarrow.parquet as pq

    return set(pq.read_schema(path).names)


def split_labels(
    labels: pd.DataFrame, project: Project, as_of: datetime
) -> tuple[pd.DataFrame, int]:
    """Keep labels known by ``as_of``, tag each row with its window, and check the split.

    Raises:
        DataError: an empty window, a single-class window, or training labels that only became
            known after the holdout started (they would leak the holdout period into training).
    """
    import pandas as pd

    spec = project.spec
    label = spec.label
    windows = [
        TimeWindow(name, getattr(spec.windows, name).start_ts, getattr(spec.windows, name).end_ts)
        for name in WINDOWS
    ]
    frame = labels.copy()
    frame[label.timestamp] = pd.to_datetime(frame[label.timestamp], utc=True)
    frame["_window"] = assign_windows(frame, label.timestamp, windows)
    frame = frame[frame["_window"].notna()]
    unlabelled = 0
    if label.available_at:
        known_at = pd.to_datetime(frame[label.available_at], utc=True)
        known = known_at <= pd.Timestamp(as_of)
        unlabelled = int((~known).sum())
        frame = frame[known]
        holdout_start = pd.Timestamp(spec.windows.holdout.start_ts)
        leaking = frame["_window"].isin(["train", "validation"]) & (
            known_at[frame.index] > holdout_start
        )
        if leaking.any():
            latest = known_at[frame.index][leaking].max()
            raise DataError(
                f"{project.spec_file}: label source overlaps the holdout window: "
                f"{int(leaking.sum())} train/validation labels become known after the holdout "
                f"starts {spec.windows.holdout.start} (latest {latest:%Y-%m-%d}); end "
                "'windows.validation' earlier or start 'windows.holdout' later"
            )
    for name in WINDOWS:
        window = frame[frame["_window"] == name]
        bounds = getattr(spec.windows, name)
        if window.empty:
            raise DataError(
                f"{project.spec_file}: field 'windows.{name}' ({bounds}) holds no labelled rows "
                f"in '{label.table}' known by {as_of:%Y-%m-%d}"
            )
        classes = sorted(window[label.column].dropna().unique().tolist())
        if len(classes) < 2:
            raise DataError(
                f"{project.spec_file}: field 'windows.{name}' ({bounds}): label "
                f"'{label.column}' has a single class {classes} in {len(window)} rows"
            )
    return frame, unlabelled


def build_training_set(
    settings: Settings,
    project: Project,
    as_of: datetime,
    windows: tuple[str, ...] = WINDOWS,
    join_cache: Path | None = None,
) -> TrainingSet:
    """Labels split by time, joined point-in-time with the project's feature service.

    Args:
        windows: which windows to join (all checks still run on every window); the gate asks
            for the holdout only.
        join_cache: folder for joined frames keyed by the digest of everything the join reads
            (entity rows, view definitions, source bytes); a later call with the same inputs
            reads the frame instead of joining again. None: always join.
    """
    spec = project.spec
    labels = read_labels(settings, project)
    split, unlabelled = split_labels(labels, project, as_of)
    split = split[split["_window"].isin(windows)]
    store = feast_io.open_store(feature_repo(settings))
    service = feast_io.feature_service(store, spec.feature_service)
    features = feast_io.service_features(service)
    request_fields = feast_io.service_request_fields(store, service)
    missing_requests = [f for f in request_fields if f not in split.columns]
    if missing_requests:
        raise ConfigError(
            f"{project.spec_file}: field 'label.request_columns' lacks {missing_requests}, "
            f"needed by feature service '{spec.feature_service}'"
        )
    entity_frame = split.drop(columns=[c for c in [spec.label.available_at] if c])
    entity_frame = entity_frame.rename(columns={spec.label.timestamp: "event_timestamp"})
    entity_frame = entity_frame.reset_index(drop=True)
    joined = _joined(store, service, entity_frame, join_cache)
    missing_segments = [s for s in spec.segments if s not in joined.columns]
    if missing_segments:
        raise ConfigError(
            f"{project.spec_file}: field 'segments': {missing_segments} are neither label "
            "columns nor features"
        )
    joined = joined.sort_values(["event_timestamp", spec.entity], kind="stable")
    frames = {
        name: joined[joined["_window"] == name].drop(columns="_window").reset_index(drop=True)
        for name in windows
    }
    prints = {name: fingerprint(frame, "event_timestamp") for name, frame in frames.items()}
    return TrainingSet(frames, features, request_fields, prints, unlabelled)


def _joined(
    store: Any, service: Any, entity_frame: pd.DataFrame, cache: Path | None
) -> pd.DataFrame:
    import pandas as pd

    key = feast_io.join_inputs_digest(store, service, entity_frame) if cache else None
    cached = cache / f"{key}.parquet" if cache is not None and key is not None else None
    if cached is not None and cached.is_file():
        log.info(
            "%d labelled rows: reusing their point-in-time join with '%s' (%s)",
            len(entity_frame),
            service.name,
            cached.name[:12],
        )
        cached.touch()  # recently used joins are the last to be pruned
        return pd.read_parquet(cached)
    log.info("joining %d labelled rows with '%s' point-in-time", len(entity_frame), service.name)
    joined = feast_io.historical_features(store, service, entity_frame)
    if cached is None:
        return joined
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.tmp")
    joined.to_parquet(partial, index=False)
    partial.replace(cached)
    prune_join_cache(cached.parent)
    return joined


def prune_join_cache(folder: Path, keep: int = JOIN_CACHE_SIZE) -> list[Path]:
    """Delete all but the ``keep`` most recently used joins; returns what was deleted."""
    joins = sorted(folder.glob("*.parquet"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for stale in joins[keep:]:
        stale.unlink(missing_ok=True)
    return joins[keep:]


def _score(model: Any, frame: pd.DataFrame) -> Any:
    return model.predict_proba(frame)[:, 1]


def _evaluate(
    model: Any, module: ModuleType, data: TrainingSet, project: Project
) -> tuple[float, dict[str, float], dict[str, Any]]:
    """Threshold from validation by the project's policy; metrics on validation and holdout."""
    spec = project.spec
    costs = CostModel(spec.costs.false_negative, spec.costs.false_positive)
    label = spec.label.column
    valid = data.frames["validation"]
    holdout = data.frames["holdout"].copy()
    valid_scores = _score(model, module.build_features(valid, data.features))
    threshold = choose_threshold(
        valid[label], valid_scores, costs, spec.threshold_policy.type, spec.threshold_policy.value
    )
    holdout["_score"] = _score(model, module.build_features(holdout, data.features))
    metrics: dict[str, float] = {}
    for name, y, s in (
        ("validation", valid[label], valid_scores),
        ("holdout", holdout[label], holdout["_score"]),
    ):
        metrics.update(
            {f"{name}_{k}": v for k, v in classification_metrics(y, s, threshold, costs).items()}
        )
    report = {
        "threshold": threshold,
        "threshold_policy": spec.threshold_policy.model_dump(),
        "metrics": metrics,
        "segments": segment_metrics(holdout, spec.segments, label, "_score", threshold, costs),
        "feature_importance": feature_importance(model),
    }
    return threshold, metrics, report


def _holdout_summary(metrics: dict[str, float], project: Project) -> str:
    holdout = {
        k.removeprefix("holdout_"): v for k, v in metrics.items() if k.startswith("holdout_")
    }
    return describe_in_business_terms(holdout, project.spec.label.event_name)


def with_windows(project: Project, overrides: dict[str, tuple[date, date]]) -> Project:
    """The project with some windows replaced (e.g. a later training window), re-validated."""
    if not overrides:
        return project
    data = project.spec.model_dump()
    for name, (start, end) in overrides.items():
        if name not in WINDOWS:
            raise ConfigError(f"--window {name}: unknown window (use {', '.join(WINDOWS)})")
        data["windows"][name] = {"start": start, "end": end}
    try:
        spec = ProjectSpec(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"--window: {first['msg'].removeprefix('Value error, ')}") from exc
    return project.model_copy(update={"spec": spec})


def train(
    settings: Settings,
    project_name: str,
    *,
    as_of: datetime | None = None,
    windows: dict[str, tuple[date, date]] | None = None,
) -> TrainResult:
    """Train the project's model and logistic baseline and register both as new versions.

    Args:
        windows: per-window ``(start, end)`` overrides of project.yaml, recorded in lineage.
    """
    started = time.perf_counter()
    project = with_windows(
        load_project(settings.resolved_projects_dir, project_name), windows or {}
    )
    module = load_train_module(project)
    spec = project.spec
    as_of = as_of or datetime.now(UTC)
    prepare_state(settings)
    data = build_training_set(settings, project, as_of)
    label = spec.label.column
    train_frame, valid_frame = data.frames["train"], data.frames["validation"]
    x_train = module.build_features(train_frame, data.features)
    x_valid = module.build_features(valid_frame, data.features)
    log.info(
        "fitting %s on %d rows (validation %d)", spec.registered_model, len(x_train), len(x_valid)
    )
    models = {
        "baseline": module.fit_baseline(x_train, train_frame[label]),
        "candidate": module.fit(
            x_train, train_frame[label], x_valid, valid_frame[label], dict(spec.model.params)
        ),
    }
    commit = git_io.head_commit(settings.root)
    lineage = {
        f"{TAG}.project": spec.name,
        f"{TAG}.feature_service": spec.feature_service,
        f"{TAG}.features": ",".join(data.features),
        f"{TAG}.request_fields": ",".join(data.request_fields),
        f"{TAG}.label": f"{spec.label.table}.{label}",
        f"{TAG}.windows": ";".join(f"{w}={getattr(spec.windows, w)}" for w in WINDOWS),
        f"{TAG}.as_of": as_of.isoformat(),
        f"{TAG}.git_commit": commit,
        f"{TAG}.project_yaml_sha256": project.spec_hash,
        f"{TAG}.primary_metric": spec.primary_metric,
    }
    for name, print_ in data.fingerprints.items():
        lineage.update(print_.as_tags(f"{TAG}.dataset.{name}"))
    trained: dict[str, TrainedVersion] = {}
    track = tracking(settings)
    with mlflow_io.session(track) as client:
        for role in ("baseline", "candidate"):
            model = models[role]
            threshold, metrics, report = _evaluate(model, module, data, project)
            tags = {**lineage, f"{TAG}.role": role, f"{TAG}.threshold": f"{threshold:.6g}"}
            if role == "candidate":
                tags[f"{TAG}.baseline_version"] = trained["baseline"].version
            record = mlflow_io.RunRecord(
                experiment=f"modelops/{spec.name}",
                run_name=f"{spec.name}-{role}",
                params={
                    **{f"model.{k}": v for k, v in spec.model.params.items()},
                    "threshold_policy": spec.threshold_policy.type,
                    "cost_false_negative": spec.costs.false_negative,
                    "cost_false_positive": spec.costs.false_positive,
                    **{f"window.{w}": str(getattr(spec.windows, w)) for w in WINDOWS},
                },
                metrics=metrics,
                tags=tags,
                json_artifacts={"evaluation.json": report},
                datasets=[
                    (data.frames[w], w, str(settings.data_dir / f"{spec.label.table}.parquet"))
                    for w in WINDOWS
                ],
            )
            logged = mlflow_io.log_run(
                client,
                track,
                record,
                model,
                module.build_features(train_frame.head(5), data.features),
            )
            summary = _holdout_summary(metrics, project)
            version = mlflow_io.register_version(
                client,
                spec.registered_model,
                logged,
                tags={
                    **tags,
                    **{
                        f"{TAG}.holdout.{k}": f"{metrics[f'holdout_{k}']:.6g}"
                        for k in ("roc_auc", "pr_auc", "cost_per_1000")
                    },
                },
                description=f"{role} of {spec.name}: {summary}",
            )
            trained[role] = TrainedVersion(
                role, str(version.version), logged.run_id, threshold, metrics, summary
            )
            log.info("registered %s version %s (%s)", spec.registered_model, version.version, role)
    notes = []
    if data.unlabelled_rows:
        notes.append(
            f"{data.unlabelled_rows} rows in the windows have no label yet as of "
            f"{as_of:%Y-%m-%d} and were left out"
        )
    return TrainResult(
        project=spec.name,
        model_name=spec.registered_model,
        candidate=trained["candidate"],
        baseline=trained["baseline"],
        training_rows=len(train_frame),
        seconds=time.perf_counter() - started,
        notes=notes,
    )
