"""``modelops train``: point-in-time training set, time split, fit, evaluate, register.

The service owns the wiring; the project's optional ``model.py`` owns the modelling (pure
functions ``build_features``, ``fit`` and ``fit_baseline``; whatever it leaves out comes from the
platform: the declarative feature step of ``project.yaml``, LightGBM, logistic regression).
Nothing is registered unless every check passed and both models trained.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from modelops.config.project import Project, ProjectSpec
from modelops.config.settings import Settings
from modelops.core import progress, registration, tags
from modelops.core.errors import ConfigError
from modelops.core.leakage import categorical_features, category_counts
from modelops.core.metrics import (
    CostModel,
    choose_threshold,
    classification_metrics,
    describe_in_business_terms,
    segment_metrics,
)
from modelops.core.modeling import feature_importance, model_kind, with_feature_step
from modelops.core.ranges import FeatureRange, format_ranges
from modelops.core.sabotage import BrokenFeatures
from modelops.core.splits import WINDOWS
from modelops.core.tags import feature_digest, format_view_digests
from modelops.integrations import feast as feast_io
from modelops.integrations import git as git_io
from modelops.integrations import mlflow as mlflow_io
from modelops.services.context import feature_repo, prepare_state, tracking
from modelops.services.context import project as project_for
from modelops.services.datasets import TrainingSet, build_training_set
from modelops.services.identity import resolve_actor

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

MODEL_FUNCTIONS = ("build_features", "fit", "fit_baseline")
ROLES = ("baseline", "candidate")
MAX_TAG_CHARS = 8000  # MLflow's limit on a tag value


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
    #: What the user must act on before production (placeholder costs), one line each.
    warnings: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a CI job cancelled, a pod evicted) unwinds like Ctrl-C, so MLflow runs end
    FAILED and nothing half-registered is left behind."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass(frozen=True)
class ModelFunctions:
    """The three modelling functions a training run calls, and where each came from."""

    build_features: Callable[[pd.DataFrame, list[str]], pd.DataFrame]
    fit: Callable[..., Any]
    fit_baseline: Callable[..., Any]
    origin: dict[str, str]


def load_model_module(project: Project) -> ModuleType | None:
    """Import ``projects/<name>/model.py`` under a private name (pickled by value), if present."""
    path = project.model_module
    if path is None:
        return None
    spec = importlib.util.spec_from_file_location(f"modelops_project_{project.spec.name}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError(f"{path}: fails to import: {type(exc).__name__}: {exc}") from exc
    for name in MODEL_FUNCTIONS:
        if hasattr(module, name) and not callable(getattr(module, name)):
            raise ConfigError(f"{path}: '{name}' is not a function")
    if not any(callable(getattr(module, name, None)) for name in MODEL_FUNCTIONS):
        raise ConfigError(
            f"{path}: defines none of {', '.join(MODEL_FUNCTIONS)}; delete it to use the "
            "platform's defaults"
        )
    return module


def _check_declared_features(project: Project, features: list[str]) -> None:
    declared = project.spec.features
    for field_name, names in (
        ("features.categorical", declared.categorical),
        ("features.clip", declared.clip),
        ("monitoring.drift_exempt", project.spec.monitoring.drift_exempt),
    ):
        unknown = sorted(set(names) - set(features))
        if unknown:
            raise ConfigError(
                f"{project.spec_file}: field '{field_name}': {unknown} not in feature "
                f"service '{project.spec.feature_service}' (it has: {', '.join(features)})"
            )


def model_functions(project: Project) -> ModelFunctions:
    """The project's functions where ``model.py`` has them, the platform's elsewhere."""
    from modelops.core.features import FeatureStep
    from modelops.core.modeling import lightgbm_pipeline, logistic_baseline

    module = load_model_module(project)
    features = project.spec.features
    defaults: dict[str, Callable[..., Any]] = {
        "build_features": FeatureStep.from_spec(
            features.categorical, {k: (c.lower, c.upper) for k, c in features.clip.items()}
        ),
        "fit": lightgbm_pipeline,
        "fit_baseline": logistic_baseline,
    }
    chosen: dict[str, Callable[..., Any]] = {}
    origin: dict[str, str] = {}
    for name, default in defaults.items():
        own = getattr(module, name, None) if module is not None else None
        chosen[name] = own if callable(own) else default
        origin[name] = "model.py" if callable(own) else "platform"
    return ModelFunctions(chosen["build_features"], chosen["fit"], chosen["fit_baseline"], origin)


def _score(model: Any, frame: pd.DataFrame, features: list[str]) -> Any:
    return model.predict_proba(frame[features])[:, 1]


def _evaluate(
    model: Any, data: TrainingSet, project: Project
) -> tuple[float, dict[str, float], dict[str, Any]]:
    """Threshold from validation by the project's policy; metrics on validation and holdout."""
    spec = project.spec
    costs = CostModel(spec.decision_costs.false_negative, spec.decision_costs.false_positive)
    label = spec.label.column
    valid = data.frames["validation"]
    holdout = data.frames["holdout"].copy()
    valid_scores = _score(model, valid, data.features)
    threshold = choose_threshold(
        valid[label], valid_scores, costs, spec.threshold_policy.type, spec.threshold_policy.value
    )
    holdout["_score"] = _score(model, holdout, data.features)
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
        "data_checks": {
            window: {
                "rows": join.rows,
                "missing_share": join.missing_share,
                "rows_without_features": join.rows_without_features,
            }
            for window, join in data.joins.items()
        },
        "availability": [asdict(result) for result in data.availability],
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


def _register_pair(
    client: MlflowClient,
    project: Project,
    logged: dict[str, mlflow_io.LoggedModel],
    evaluated: dict[str, tuple[float, dict[str, float], dict[str, Any]]],
    role_tags: dict[str, dict[str, str]],
    train_id: str,
) -> dict[str, TrainedVersion]:
    """Register the logged baseline, then the candidate, and close the pair."""
    spec = project.spec
    trained: dict[str, TrainedVersion] = {}
    # Both models are fitted, evaluated and logged: only now is anything registered, the
    # baseline first and the pair closed by the candidate's and the baseline's cross tags.
    # Each version is created with a marker naming this train, removed once the pair is
    # closed: a crash in between leaves the marker, and any later train or 'models sync',
    # on any host, completes the pair or deletes the version left without its partner.
    marker = registration.Marker(train_id, datetime.now(UTC)).text()
    for role in ROLES:
        threshold, metrics, _ = evaluated[role]
        tags_ = dict(role_tags[role])
        if role == "candidate":
            tags_[tags.BASELINE_VERSION] = trained["baseline"].version
        # the gate compares a holdout ROC-AUC with both (leakage evidence)
        tags_[tags.validation_metric("roc_auc")] = repr(metrics["validation_roc_auc"])
        tags_[tags.BASELINE_VALIDATION_ROC_AUC] = repr(
            evaluated["baseline"][1]["validation_roc_auc"]
        )
        summary = _holdout_summary(metrics, project)
        version = mlflow_io.register_version(
            client,
            spec.registered_model,
            logged[role],
            tags={
                **tags_,
                tags.REGISTRATION_PENDING: marker,
                tags.ARTIFACT_SHA256: mlflow_io.artifact_sha256(logged[role].model_uri),
                **{
                    tags.holdout_metric(k): repr(metrics[f"holdout_{k}"])
                    for k in ("roc_auc", "pr_auc", "cost_per_1000")
                },
            },
            description=f"{role} of {spec.name}: {summary}",
        )
        trained[role] = TrainedVersion(
            role, str(version.version), logged[role].run_id, threshold, metrics, summary
        )
        log.info("registered %s version %s (%s)", spec.registered_model, version.version, role)
    mlflow_io.set_version_tags(
        client,
        spec.registered_model,
        trained["baseline"].version,
        {tags.CANDIDATE_VERSION: trained["candidate"].version},
    )
    for role in ROLES:
        mlflow_io.clear_version_tag(
            client, spec.registered_model, trained[role].version, tags.REGISTRATION_PENDING
        )
    return trained


def _fit(module: Any, project: Project, data: Any) -> dict[str, Any]:
    """The candidate and the logistic baseline, fitted and wrapped with the feature step."""
    spec, label = project.spec, project.spec.label.column
    train_frame, valid_frame = data.frames["train"], data.frames["validation"]
    x_train = module.build_features(train_frame, data.features)
    x_valid = module.build_features(valid_frame, data.features)
    log.info(
        "fitting %s on %d rows (validation %d)", spec.registered_model, len(x_train), len(x_valid)
    )
    fitted = {
        "baseline": module.fit_baseline(x_train, train_frame[label]),
        "candidate": module.fit(
            x_train, train_frame[label], x_valid, valid_frame[label], dict(spec.model.params)
        ),
    }
    return {
        role: with_feature_step(module.build_features, data.features, model)
        for role, model in fitted.items()
    }


def _lineage(
    settings: Settings,
    project: Project,
    data: Any,
    views: dict[str, str],
    as_of: datetime,
    sabotage: BrokenFeatures | None = None,
) -> dict[str, str]:
    """The tags every version of this training carries: who, from what data, code and config."""
    spec, label = project.spec, project.spec.label.column
    lineage = {
        tags.TRAINED_BY: resolve_actor(None, settings.root) or "unknown",
        tags.PROJECT: spec.name,
        tags.FEATURE_SERVICE: spec.feature_service,
        tags.FEATURES: ",".join(data.features),
        tags.REQUEST_FIELDS: ",".join(data.request_fields),
        tags.FEATURE_DIGEST: feature_digest(views),
        tags.FEATURE_DIGEST_VIEWS: format_view_digests(views),
        tags.MISSING_SHARE_TRAIN: json.dumps(
            {k: round(v, 6) for k, v in data.joins["train"].missing_share.items()},
            sort_keys=True,
        ),
        tags.LABEL: f"{spec.label.table}.{label}",
        tags.WINDOWS: ";".join(f"{w}={getattr(spec.windows, w)}" for w in WINDOWS),
        tags.AS_OF: as_of.isoformat(),
        tags.GIT_COMMIT: git_io.head_commit(settings.root),
        tags.PROJECT_YAML_SHA256: project.spec_hash,
        tags.PRIMARY_METRIC: spec.primary_metric,
        tags.PREVALENCE: repr(float(data.frames["train"][label].mean())),
        tags.FEATURE_RANGES: _feature_ranges(data),
        tags.COSTS: tags.COSTS_PLACEHOLDER if spec.placeholder_costs else tags.COSTS_PROJECT,
        tags.CATEGORY_COUNTS: _category_counts(data, project),
    }
    for name, print_ in data.fingerprints.items():
        lineage.update(print_.as_tags(tags.dataset(name)))
    if sabotage is not None:
        lineage[tags.DRILL_BROKEN_FEATURES] = sabotage.tag()
    return lineage


def _category_counts(data: TrainingSet, project: Project) -> str:
    """The tag of each categorical feature's label counts per category on the training rows:
    the gate scores a holdout category by its training label rate (leakage evidence)."""
    frame = data.frames["train"]
    categorical = categorical_features(frame, data.features, project.spec.features.categorical)
    counts = category_counts(frame, categorical, frame[project.spec.label.column])
    return tags.format_category_counts(counts, MAX_TAG_CHARS)


def _feature_ranges(data: TrainingSet) -> str:
    """The tag of the training rows' [min, max] per numeric feature and request field (the
    service refuses or flags values outside, ``serving.out_of_range``)."""
    import numpy as np
    import pandas as pd

    frame = data.frames["train"]
    ranges: dict[str, FeatureRange] = {}
    for name in dict.fromkeys([*data.features, *data.request_fields]):
        column = frame[name] if name in frame.columns else None
        if column is None or pd.api.types.is_bool_dtype(column):
            continue
        if not pd.api.types.is_numeric_dtype(column):
            continue
        values = column.to_numpy(dtype="float64", na_value=np.nan)
        finite = values[np.isfinite(values)]
        if finite.size:
            ranges[name] = FeatureRange(low=float(finite.min()), high=float(finite.max()))
    text = format_ranges(ranges)
    if len(text) > MAX_TAG_CHARS:
        raise ConfigError(
            f"the training ranges of {len(ranges)} features take {len(text)} characters, more "
            f"than an MLflow tag holds ({MAX_TAG_CHARS})"
        )
    return text


def _role_tags(
    lineage: dict[str, str], role: str, threshold: float, train_id: str, kind: str
) -> dict[str, str]:
    return {
        **lineage,
        tags.ROLE: role,
        tags.KIND: kind,
        tags.THRESHOLD: repr(threshold),
        tags.TRAIN_ID: train_id,
        **mlflow_io.process_tags(),
    }


def _log_role(
    client: Any,
    track: Any,
    settings: Settings,
    project: Project,
    data: Any,
    model: Any,
    role: str,
    role_tags: dict[str, str],
    evaluated: Any,
) -> mlflow_io.LoggedModel:
    """One MLflow run of ``role``: parameters, metrics, the evaluation, the datasets, the model."""
    spec = project.spec
    _, metrics, report = evaluated
    record = mlflow_io.RunRecord(
        experiment=f"modelops/{spec.name}",
        run_name=f"{spec.name}-{role}",
        params={
            **{f"model.{k}": v for k, v in spec.model.params.items()},
            "threshold_policy": spec.threshold_policy.type,
            "cost_false_negative": spec.decision_costs.false_negative,
            "cost_false_positive": spec.decision_costs.false_positive,
            **{f"window.{w}": str(getattr(spec.windows, w)) for w in WINDOWS},
        },
        metrics=metrics,
        tags=role_tags,
        json_artifacts={"evaluation.json": report},
        datasets=[
            (data.frames[w], w, str(settings.data_dir / f"{spec.label.table}.parquet"))
            for w in WINDOWS
        ],
    )
    return mlflow_io.log_run(
        client, track, record, model, data.frames["train"][data.features].head(5)
    )


def train(
    settings: Settings,
    project_name: str,
    *,
    as_of: datetime | None = None,
    windows: dict[str, tuple[date, date]] | None = None,
    sabotage: BrokenFeatures | None = None,
) -> TrainResult:
    """Train the project's model and logistic baseline and register both as new versions.

    Args:
        windows: per-window ``(start, end)`` overrides of project.yaml, recorded in lineage.
        sabotage: drills only (``modelops train`` never passes it): features broken in the
            rows the models learn from, recorded on both versions
            (:data:`~modelops.core.tags.DRILL_BROKEN_FEATURES`).
    """
    started = time.perf_counter()
    project = with_windows(project_for(settings, project_name), windows or {})
    module = model_functions(project)
    spec = project.spec
    as_of = as_of or datetime.now(UTC)
    prepare_state(settings)
    store = feast_io.open_store(feature_repo(settings))
    data = build_training_set(settings, project, as_of, store=store)
    _check_declared_features(project, data.features)
    if sabotage is not None:
        sabotage.check(data.features)
        data = replace(data, frames=sabotage.apply(data.frames))
    with progress.stage("fit candidate and baseline", len(data.frames["train"])):
        models = _fit(module, project, data)
    views = feast_io.definitions_digest(
        store, feast_io.feature_service(store, spec.feature_service)
    )
    lineage = _lineage(settings, project, data, views, as_of, sabotage)
    scored = len(data.frames["validation"]) + len(data.frames["holdout"])
    with progress.stage("threshold and holdout metrics", scored):
        evaluated = {role: _evaluate(models[role], data, project) for role in ROLES}
    track = tracking(settings)
    experiment = f"modelops/{spec.name}"
    train_id = uuid.uuid4().hex
    with (
        mlflow_io.session(track) as client,
        _terminate_as_interrupt(),
        progress.stage("log and register in MLflow"),
    ):
        mlflow_io.clean_up_interrupted(client, experiment, spec.registered_model)
        role_tags = {
            role: _role_tags(lineage, role, evaluated[role][0], train_id, model_kind(models[role]))
            for role in ROLES
        }
        logged = {
            role: _log_role(
                client,
                track,
                settings,
                project,
                data,
                models[role],
                role,
                role_tags[role],
                evaluated[role],
            )
            for role in ROLES
        }
        trained = _register_pair(client, project, logged, evaluated, role_tags, train_id)
    warnings = []
    if spec.placeholder_costs:
        warnings.append(
            "no 'costs:' in project.yaml: the threshold was chosen with placeholder 1:1 costs; "
            "fine for dev and staging, production refuses it (set costs.false_negative and "
            "costs.false_positive, then train again)"
        )
    return TrainResult(
        project=spec.name,
        model_name=spec.registered_model,
        candidate=trained["candidate"],
        baseline=trained["baseline"],
        training_rows=len(data.frames["train"]),
        seconds=time.perf_counter() - started,
        notes=_notes(data, as_of, sabotage),
        warnings=warnings,
    )


def _notes(data: TrainingSet, as_of: datetime, sabotage: BrokenFeatures | None) -> list[str]:
    notes = []
    if data.unlabelled_rows:
        notes.append(
            f"{data.unlabelled_rows} rows in the windows have no label yet as of "
            f"{as_of:%Y-%m-%d} and were left out"
        )
    if sabotage is not None:
        notes.append(f"drill: {sabotage.tag()}")
    return notes
