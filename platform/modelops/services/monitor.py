"""``modelops monitor``: watch the version serving an environment, and act on what is seen.

One run (:func:`run`):

1. **read** the prediction log of the last ``monitoring.window_hours`` (features, scores) and,
   over the longer look-back, the scores and entities the labels are joined to;
2. **reference**: the serving version's training and holdout rows, rebuilt point-in-time from
   the windows and ``as_of`` its lineage records, a seeded sample of them scored by the version
   itself, cached per version (``<state_dir>/monitoring-reference/<project>/``);
3. **measure**: data quality of every logged row (missing values, values outside the
   reference's categories or range, a broken schema); Evidently's drift per feature and of the
   score on a uniform sample of the window; classification quality on the predictions whose
   labels are known by now, with the business cost per 1,000 decisions, against the version's
   gate-time metrics and its predecessor's live ones; a shadow version side by side;
4. **decide** with :mod:`modelops.core.monitoring` (the policy of ``project.yaml``);
5. **save** the Evidently reports and ``summary.json`` in ``<state_dir>/monitoring/<project>/<run
   id>/``, the same files in an MLflow run of the ``modelops-monitoring`` experiment, and the
   headline numbers as a Prometheus textfile;
6. **act**: roll back (the path of ``modelops rollback``: ledger, aliases, GitOps commit);
   retrain, gate and promote per policy (a candidate never bypasses the gate; production only
   with ``auto_promote_production`` where no approval is needed, else a pending promotion);
   propose a shadow version; or alert. Every action is a ledger entry carrying its evidence and
   the links to the reports. A dry run decides and saves its report, and changes nothing else.

Actions are recorded after they happened, so a run that crashes half-way leaves what the moves
themselves recorded (a ledger move is atomic, an alias that lags is repaired by ``modelops
models sync``) and the next run decides again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.config.project import Project
from modelops.config.settings import Settings
from modelops.core import monitoring as policy_core
from modelops.core import tags
from modelops.core.errors import DataError, ModelopsError
from modelops.core.metrics import CostModel, classification_metrics
from modelops.core.splits import WINDOWS
from modelops.integrations import evidently as evidently_io
from modelops.integrations import mlflow as mlflow_io
from modelops.integrations.database import Ledger, LedgerEntry, RecordedEntry
from modelops.services.context import (
    approval_required,
    check_environment,
    tracking,
)
from modelops.services.context import ledger as ledger_for
from modelops.services.context import project as project_for

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)

MONITORING_EXPERIMENT = "modelops-monitoring"
MONITOR_ACTOR = "modelops-monitor"
RUN_TAG = f"{tags.PREFIX}.monitor"
SCORE = "model_score"
"""The score's column in the reports (the log's ``score``)."""
REPORT_SAMPLE_ROWS = 50_000
"""Labelled predictions the Evidently classification report shows at most (a uniform sample);
the metrics that decide always use every labelled prediction."""
MAX_CATEGORIES = 10_000
"""A categorical feature with more reference values is not checked for unseen values."""
_REFERENCE_FORMAT = "modelops monitoring reference 1"


class MonitorError(ModelopsError):
    """A monitoring run cannot start: nothing serves, no lineage, an unreadable log."""


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Outcome:
    """What executing one action did. ``exit_code`` is set when the run must end with it (an
    alias that lags behind a move: 3)."""

    kind: str
    done: bool
    detail: str
    ledger_seq: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None


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


# ----------------------------------------------------------------------------- lineage


@dataclass(frozen=True)
class Lineage:
    """What the registry recorded about the serving version."""

    version: str
    features: list[str]
    threshold: float
    windows: dict[str, tuple[date, date]]
    as_of: datetime
    artifact_sha256: str
    run_id: str | None
    tags: dict[str, str]


def _parse_windows(text: str) -> dict[str, tuple[date, date]]:
    windows: dict[str, tuple[date, date]] = {}
    for item in text.split(";"):
        name, _, bounds = item.partition("=")
        start, _, end = bounds.partition("..")
        if name and start and end:
            windows[name.strip()] = (date.fromisoformat(start), date.fromisoformat(end))
    return windows


def _lineage(client: Any, model_name: str, version: str) -> Lineage:
    mv = mlflow_io.get_version(client, model_name, version)
    version_tags = dict(mv.tags)
    features = [f for f in version_tags.get(tags.FEATURES, "").split(",") if f]
    windows = _parse_windows(version_tags.get(tags.WINDOWS, ""))
    missing = [
        key
        for key, ok in (
            (tags.FEATURES, bool(features)),
            (tags.THRESHOLD, tags.THRESHOLD in version_tags),
            (tags.WINDOWS, set(WINDOWS) <= set(windows)),
            (tags.AS_OF, tags.AS_OF in version_tags),
        )
        if not ok
    ]
    if missing:
        raise MonitorError(
            f"{model_name} v{version} lacks the lineage tag(s) {', '.join(missing)}: its "
            "reference data cannot be rebuilt; register it again with 'modelops train'"
        )
    return Lineage(
        version=str(version),
        features=features,
        threshold=float(version_tags[tags.THRESHOLD]),
        windows=windows,
        as_of=_utc(datetime.fromisoformat(version_tags[tags.AS_OF])),
        artifact_sha256=version_tags.get(tags.ARTIFACT_SHA256, ""),
        run_id=mv.run_id,
        tags=version_tags,
    )


def read_lineage(settings: Settings, project: Project, version: str) -> Lineage:
    """``version``'s recorded lineage: features, threshold, windows and training time."""
    with mlflow_io.session(tracking(settings)) as client:
        return _lineage(client, project.spec.registered_model, version)


def _days(span: timedelta) -> str:
    return f"{span.total_seconds() / 86400:.4g} days"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# ----------------------------------------------------------------------------- reference


@dataclass(frozen=True)
class Reference:
    """A sample of the version's training and holdout rows with its own scores, and a profile
    of every row (missing shares, ranges, categories)."""

    frame: pd.DataFrame
    profile: dict[str, Any]
    path: Path

    @property
    def numerical(self) -> list[str]:
        return [f for f, p in self.profile["features"].items() if p["kind"] == "numerical"]

    @property
    def categorical(self) -> list[str]:
        return [f for f, p in self.profile["features"].items() if p["kind"] == "categorical"]


def reference_dir(settings: Settings, project: str) -> Path:
    """Cached references, beside (not inside) the runs' folder the status page lists."""
    return settings.resolved_state_dir / "monitoring-reference" / project


def monitoring_dir(settings: Settings) -> Path:
    return settings.resolved_state_dir / "monitoring"


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _write_atomically(path: Path, write: Callable[[Path], Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(partial)
    partial.replace(path)


def _profile(frame: pd.DataFrame, features: list[str]) -> dict[str, dict[str, Any]]:
    import pandas as pd

    profile: dict[str, dict[str, Any]] = {}
    for name in features:
        column = frame[name]
        missing = float(column.isna().mean()) if len(column) else 0.0
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            values = column.dropna()
            profile[name] = {
                "kind": "numerical",
                "missing_share": missing,
                "min": float(values.min()) if len(values) else None,
                "max": float(values.max()) if len(values) else None,
            }
        else:
            values = column.dropna().astype(str).unique().tolist()
            profile[name] = {
                "kind": "categorical",
                "missing_share": missing,
                "categories": sorted(values) if len(values) <= MAX_CATEGORIES else None,
            }
    return profile


def load_reference(settings: Settings, project: Project, lineage: Lineage, rows: int) -> Reference:
    """The version's reference: from the cache when its files check out, else rebuilt."""
    import pandas as pd

    folder = reference_dir(settings, project.spec.name)
    key = f"v{lineage.version}-{(lineage.artifact_sha256 or 'nosha')[:12]}-{rows}"
    parquet, meta = folder / f"{key}.parquet", folder / f"{key}.json"
    if parquet.is_file() and meta.is_file():
        try:
            profile = json.loads(meta.read_text())
            if profile.get("format") != _REFERENCE_FORMAT or profile.get("sha256") != _sha256(
                parquet
            ):
                raise ValueError("checksum or format differs")
            return Reference(pd.read_parquet(parquet), profile, parquet)
        except (OSError, ValueError) as exc:
            log.warning("rebuilding the monitoring reference %s (%s)", parquet, exc)
    return _build_reference(settings, project, lineage, rows, parquet, meta)


def _build_reference(
    settings: Settings,
    project: Project,
    lineage: Lineage,
    rows: int,
    parquet: Path,
    meta: Path,
) -> Reference:
    import numpy as np
    import pandas as pd

    from modelops.core.scorer import build_scorer
    from modelops.services.datasets import build_training_set
    from modelops.services.train import with_windows

    spec = project.spec
    log.info("building the monitoring reference of %s v%s", spec.name, lineage.version)
    recorded = with_windows(project, lineage.windows)
    data = build_training_set(settings, recorded, lineage.as_of, windows=("train", "holdout"))
    missing = [f for f in lineage.features if f not in data.features]
    if missing:
        raise MonitorError(
            f"{spec.registered_model} v{lineage.version} was trained on {missing}, which the "
            f"feature service '{spec.feature_service}' no longer serves"
        )
    keep = [
        c
        for c in dict.fromkeys(
            [*lineage.features, spec.label.column, "event_timestamp", spec.entity]
        )
        if c in data.frames["train"].columns
    ]
    parts = []
    for name in ("train", "holdout"):
        part = data.frames[name][keep].copy()
        part["_window"] = name
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    fingerprints = {
        name: {
            "recorded": lineage.tags.get(f"{tags.dataset(name)}.sha256"),
            "rebuilt": data.fingerprints[name].sha256,
        }
        for name in ("train", "holdout")
    }
    profile: dict[str, Any] = {
        "format": _REFERENCE_FORMAT,
        "version": lineage.version,
        "artifact_sha256": lineage.artifact_sha256,
        "windows": {k: [str(a), str(b)] for k, (a, b) in lineage.windows.items()},
        "as_of": lineage.as_of.isoformat(),
        "rows": len(frame),
        "features": _profile(frame, lineage.features),
        "fingerprints": fingerprints,
        "same_rows_as_training": all(
            v["recorded"] in (None, v["rebuilt"]) for v in fingerprints.values()
        ),
    }
    if len(frame) > rows:
        chosen = np.sort(np.random.default_rng(0).choice(len(frame), rows, replace=False))
        frame = frame.take(chosen).reset_index(drop=True)
    profile["sampled_rows"] = len(frame)
    model, _ = mlflow_io.load_verified_model(
        f"models:/{spec.registered_model}/{lineage.version}",
        lineage.artifact_sha256,
        f"{spec.registered_model} v{lineage.version}",
    )
    scorer = build_scorer(model, lineage.features)
    frame[SCORE] = scorer.score_columns({f: frame[f].to_numpy() for f in lineage.features})
    _write_atomically(parquet, lambda p: frame.to_parquet(p, index=False))
    profile["sha256"] = _sha256(parquet)
    _write_atomically(meta, lambda p: p.write_text(json.dumps(profile, indent=1)))
    return Reference(frame, profile, parquet)


# ----------------------------------------------------------------------------- the log

WINDOW_COLUMNS = ("logged_at", "environment", "model_version", "score", "features")
"""What the drift window needs of the log (one column per feature once decoded)."""
LOOKBACK_COLUMNS = (
    "logged_at",
    "environment",
    "model_version",
    "entity",
    "score",
    "shadow_version",
    "shadow_score",
)
"""What the labels are joined to: no features, so a long look-back stays cheap."""


def read_log(
    settings: Settings,
    project: str,
    environment: str,
    start: datetime,
    end: datetime,
    *,
    columns: tuple[str, ...] = WINDOW_COLUMNS,
) -> pa.Table:
    """The project's predictions in ``environment`` logged in ``[start, end)``, as an Arrow
    table of the log's ``columns``, oldest first.

    The one place the monitor reads the log (tests replace it). A directory is read with
    pyarrow straight from its ``date=YYYY-MM-DD/*.parquet`` partitions, keeping the JSON
    columns as Arrow strings (decoded by :func:`decode_json`); a SQL target goes through
    :func:`modelops.serving.prediction_log.read_prediction_log`.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    target = settings.resolved_prediction_log
    wanted = list(dict.fromkeys([*columns, "logged_at", "environment"]))
    try:
        if "://" in target:
            from modelops.serving.prediction_log import read_prediction_log

            frame = read_prediction_log(target, start, end, project=project, expand=False)
            table = pa.Table.from_pandas(
                frame[[c for c in wanted if c in frame.columns]], preserve_index=False
            )
        else:
            table = _read_partitions(Path(target), start, end, project, wanted)
    except (OSError, pa.ArrowException) as exc:
        raise MonitorError(f"prediction log {target}: unreadable: {exc}") from exc
    if table.num_rows and "environment" in table.column_names:
        env = table["environment"]
        table = table.filter(pc.or_kleene(pc.equal(env, environment), pc.is_null(env)))
    if table.num_rows and "logged_at" in table.column_names:
        table = table.sort_by("logged_at")
    return table.select([c for c in columns if c in table.column_names])


def _read_partitions(
    directory: Path, start: datetime, end: datetime, project: str, columns: list[str]
) -> pa.Table:
    import pyarrow as pa
    import pyarrow.dataset as ds

    files: list[str] = []
    day = start.date()
    while day <= end.date():
        folder = directory / f"date={day.isoformat()}"
        if folder.is_dir():
            files += [
                str(p) for p in sorted(folder.glob("*.parquet")) if not p.name.startswith(".")
            ]
        day += timedelta(days=1)
    if not files:
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    dataset = ds.dataset(files, format="parquet")
    present = [c for c in columns if c in dataset.schema.names]
    condition = (ds.field("logged_at") >= pa.scalar(start)) & (
        ds.field("logged_at") < pa.scalar(end)
    )
    if "project" in dataset.schema.names:
        condition = condition & (ds.field("project") == project)
    return dataset.to_table(columns=present, filter=condition)


def decode_json(column: Any, schema: pa.Schema | None = None) -> pa.Table:
    """One column per key of a column of JSON objects (null rows: every key null), decoded in
    Arrow: the objects are joined into newline-delimited JSON and parsed by
    ``pyarrow.json`` (``schema``: the types of the keys wanted; others are ignored). Falls back
    to Python's ``json`` when Arrow cannot parse them with that schema."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    texts = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(texts) == 0:
        return pa.table({f.name: pa.array([], f.type) for f in (schema or [])})
    texts = pc.fill_null(texts.cast(pa.string()), "{}")
    lines = pc.binary_join_element_wise(texts, "", "\n").cast(pa.large_string())
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[
        lines.offset : lines.offset + len(lines) + 1
    ]
    body = lines.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    options = pj.ParseOptions(
        explicit_schema=schema, unexpected_field_behavior="ignore" if schema else "infer"
    )
    try:
        table = pj.read_json(
            pa.BufferReader(body),
            parse_options=options,
            read_options=pj.ReadOptions(block_size=32 << 20),
        )
    except pa.ArrowInvalid:  # not objects of these types: decode row by row, keep what is there
        table = _decode_rows(texts.to_pylist(), schema)
    if table.num_rows != len(texts):
        raise MonitorError(
            f"the prediction log's JSON decoded to {table.num_rows} rows, not {len(texts)}"
        )
    return table


def _decode_rows(texts: list[str | None], schema: pa.Schema | None) -> pa.Table:
    """Python's ``json``, one row at a time: a malformed row has no values; a value of another
    type than ``schema`` says makes its column text (the data checks name it)."""
    import pyarrow as pa

    parsed: list[dict[str, Any]] = []
    for text in texts:
        try:
            value = json.loads(text) if text else {}
        except ValueError:
            value = {}
        parsed.append(value if isinstance(value, dict) else {})
    names = (
        [f.name for f in schema] if schema else list(dict.fromkeys(k for r in parsed for k in r))
    )
    columns: dict[str, Any] = {}
    for name in names:
        values = [row.get(name) for row in parsed]
        wanted = schema.field(name).type if schema else None
        try:
            columns[name] = pa.array(values, type=wanted)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[name] = pa.array(
                [None if v is None else str(v) for v in values], type=pa.string()
            )
    return pa.table(columns) if columns else pa.table({"_": pa.nulls(len(texts))}).drop(["_"])


def _features_schema(reference: Reference, features: list[str]) -> pa.Schema:
    import pyarrow as pa

    kinds = reference.profile["features"]
    return pa.schema(
        [(f, pa.string() if kinds[f]["kind"] == "categorical" else pa.float64()) for f in features]
    )


def _window_frame(table: pa.Table, reference: Reference, features: list[str]) -> pd.DataFrame:
    """The window's rows: features decoded (typed as the reference says), score, version."""
    import pandas as pd

    base = table.select(
        [c for c in ("logged_at", "model_version", "score") if c in table.column_names]
    ).to_pandas()
    if "features" in table.column_names and table.num_rows:
        decoded = decode_json(table["features"], _features_schema(reference, features))
        frame = decoded.to_pandas()
    else:
        frame = pd.DataFrame(index=range(table.num_rows))
    return pd.concat([base.reset_index(drop=True), frame.reset_index(drop=True)], axis=1)


def _scored_frame(table: pa.Table, entity: str) -> pd.DataFrame:
    """The look-back's rows with their entity key decoded: what labels are joined to."""
    import pandas as pd

    keep = [c for c in LOOKBACK_COLUMNS if c in table.column_names and c != "entity"]
    frame = table.select(keep).to_pandas()
    if "entity" in table.column_names and table.num_rows:
        keys = decode_json(table["entity"]).to_pandas()
        frame[entity] = keys[entity] if entity in keys.columns else pd.NA
    else:
        frame[entity] = pd.Series(dtype="object")
    if "logged_at" in frame.columns:
        frame["logged_at"] = pd.to_datetime(frame["logged_at"], utc=True)
    for name in ("model_version", "shadow_version"):
        if name in frame.columns:
            frame[name] = frame[name].astype("string")
    return frame


# ----------------------------------------------------------------------------- measure


def measure_quality(
    window: pd.DataFrame, features: list[str], profile: dict[str, Any]
) -> policy_core.Quality:
    """Exact shares over every logged row: missing, unseen categories, out of range."""
    import pandas as pd

    rows = len(window)
    if rows == 0:
        return policy_core.Quality(rows=0)
    schema: list[str] = []
    found: dict[str, policy_core.FeatureQuality] = {}
    for name in features:
        spec = profile["features"][name]
        reference_missing = float(spec.get("missing_share") or 0.0)
        if name not in window.columns or window[name].isna().all():
            if name not in window.columns:
                schema.append(f"{name}: absent from every logged prediction")
            found[name] = policy_core.FeatureQuality(1.0, reference_missing)
            continue
        column = window[name]
        if spec["kind"] == "numerical":
            values = pd.to_numeric(column, errors="coerce")
            not_numbers = int((values.isna() & column.notna()).sum())
            if not_numbers:
                schema.append(f"{name}: {not_numbers} logged values are not numbers")
            low, high = spec.get("min"), spec.get("max")
            outside = None
            if low is not None and high is not None:
                present = values.dropna()
                outside = float(((present < low) | (present > high)).sum()) / rows
            found[name] = policy_core.FeatureQuality(
                float(values.isna().mean()), reference_missing, out_of_range_share=outside
            )
        else:
            categories = spec.get("categories")
            unseen = None
            present = column.dropna()
            if categories is not None:
                unseen = float((~present.astype(str).isin(categories)).sum()) / rows
            found[name] = policy_core.FeatureQuality(
                float(column.isna().mean()), reference_missing, unseen_share=unseen
            )
    return policy_core.Quality(rows=rows, features=found, schema_problems=tuple(schema))


def _sample(frame: pd.DataFrame, rows: int | None, seed: int) -> pd.DataFrame:
    import numpy as np

    if rows is None or len(frame) <= rows:
        return frame
    chosen = np.sort(np.random.default_rng(seed).choice(len(frame), rows, replace=False))
    return frame.take(chosen)


def _seed(*parts: str) -> int:
    return int(hashlib.sha256("|".join(parts).encode()).hexdigest()[:8], 16)


def measure_drift(
    window: pd.DataFrame,
    reference: Reference,
    features: list[str],
    monitoring: Any,
    run_dir: Path | None,
    seed: int,
) -> tuple[policy_core.Drift | None, evidently_io.DriftResult | None]:
    """Evidently's drift of a uniform sample of the window (and of the reference), saved as
    ``report.html`` and ``evidently.json`` in ``run_dir``."""
    usable = [f for f in features if f in window.columns and window[f].notna().any()]
    if not len(window) or not usable:
        return None, None
    numerical = [f for f in reference.numerical if f in usable]
    categorical = [f for f in reference.categorical if f in usable]
    current = _sample(window, monitoring.drift_sample_rows, seed).copy()
    baseline = _sample(reference.frame, monitoring.drift_sample_rows, 0).copy()
    for name in categorical:  # the same representation on both sides: strings or missing
        current[name] = current[name].astype("string").astype(object)
        baseline[name] = baseline[name].astype("string").astype(object)
    score = None
    if "score" in current.columns and current["score"].notna().any():
        current[SCORE] = current["score"].astype("float64")
        score = SCORE
    ranges = {
        f: (reference.profile["features"][f]["min"], reference.profile["features"][f]["max"])
        for f in numerical
        if reference.profile["features"][f].get("min") is not None
    }
    categories = {
        f: reference.profile["features"][f]["categories"]
        for f in categorical
        if reference.profile["features"][f].get("categories") is not None
    }
    result = evidently_io.drift_report(
        current,
        baseline,
        numerical=numerical,
        categorical=categorical,
        score=score,
        numerical_method=monitoring.drift_method,
        categorical_method=monitoring.drift_method_categorical,
        threshold=monitoring.drift_threshold,
        drift_share=monitoring.drift_share,
        ranges=ranges,
        categories=categories,
        html=run_dir / "report.html" if run_dir else None,
        json_path=run_dir / "evidently.json" if run_dir else None,
    )
    share = result.share
    if not math.isfinite(share):
        share = len(result.drifted) / max(len(result.columns), 1)
    method = f"{monitoring.drift_method} (numerical), {monitoring.drift_method_categorical}"
    drift = policy_core.Drift(
        method=method,
        share=share,
        drifted=tuple(result.drifted),
        scores={k: v.score for k, v in result.columns.items()},
        threshold=monitoring.drift_threshold,
        prediction_score=result.prediction.score if result.prediction else None,
        prediction_drifted=result.prediction.drifted if result.prediction else None,
        rows_used=result.current_rows,
        rows_total=len(window),
        reference_rows=result.reference_rows,
    )
    return drift, result


def read_known_labels(settings: Settings, project: Project, as_of: datetime) -> pd.DataFrame:
    """The label table's rows whose label is known by ``as_of`` (tests replace this)."""
    import pandas as pd

    from modelops.services.datasets import read_labels

    label = project.spec.label
    frame = read_labels(settings, project)
    frame[label.timestamp] = pd.to_datetime(frame[label.timestamp], utc=True)
    if label.available_at:
        known = pd.to_datetime(frame[label.available_at], utc=True) <= pd.Timestamp(as_of)
        frame = frame[known]
    return frame[frame[label.timestamp] <= pd.Timestamp(as_of)]


def label_maturity(project: Project, labels: pd.DataFrame) -> tuple[timedelta, str]:
    """How old a prediction must be before it is judged, and where that figure comes from
    (``monitoring.label_maturity_days``, else the longest delay among ``labels``)."""
    import pandas as pd

    spec = project.spec
    configured = spec.monitoring.label_maturity_days
    if configured is not None:
        return timedelta(days=configured), "monitoring.label_maturity_days"
    available = spec.label.available_at
    if not available or labels.empty or available not in labels.columns:
        return timedelta(0), "labels carry no availability time"
    delay = pd.to_datetime(labels[available], utc=True) - pd.to_datetime(
        labels[spec.label.timestamp], utc=True
    )
    longest = delay.max()
    if pd.isna(longest) or longest <= pd.Timedelta(0):
        return timedelta(0), "the longest label delay known"
    return longest.to_pytimedelta(), "the longest label delay known"


def _join_keys(left: pd.Series, right: pd.Series) -> tuple[Any, Any]:
    """Entity keys both sides can be matched on: integers as they are, anything else as text."""
    import pandas as pd

    if pd.api.types.is_integer_dtype(left) and pd.api.types.is_integer_dtype(right):
        return left.to_numpy(dtype="int64"), right.to_numpy(dtype="int64")
    return left.astype(str).to_numpy(), right.astype(str).to_numpy()


def join_labels(
    scored: pd.DataFrame, labels: pd.DataFrame, project: Project, tolerance_s: float
) -> pd.DataFrame:
    """``scored`` rows that got a label: the label row of the same entity whose timestamp is
    nearest the logged time, at most ``tolerance_s`` away (each label used once at most)."""
    import pandas as pd

    spec = project.spec
    entity, stamp, column = spec.entity, spec.label.timestamp, spec.label.column
    if scored.empty or labels.empty:
        return scored.iloc[0:0].assign(label=pd.Series(dtype="int64"))
    left_key, right_key = _join_keys(scored[entity], labels[entity])
    left = scored.assign(
        _key=left_key,
        _t=pd.to_datetime(scored["logged_at"], utc=True).astype("datetime64[ns, UTC]"),
    ).sort_values("_t", kind="stable")
    right = pd.DataFrame(
        {
            "_key": right_key,
            "_t_label": pd.to_datetime(labels[stamp], utc=True)
            .astype("datetime64[ns, UTC]")
            .reset_index(drop=True),  # a Series: to_numpy() would box every time
            "label": labels[column].astype("int64").to_numpy(),
        }
    ).sort_values("_t_label", kind="stable")
    merged = pd.merge_asof(
        left,
        right,
        left_on="_t",
        right_on="_t_label",
        by="_key",
        tolerance=pd.Timedelta(seconds=tolerance_s),
        direction="nearest",
    )
    merged = merged[merged["label"].notna()]
    merged = merged.drop_duplicates(subset=["_key", "_t_label"], keep="first")
    merged["label"] = merged["label"].astype("int64")
    return merged.drop(columns=["_key", "_t", "_t_label"]).reset_index(drop=True)


def _version_metrics(
    labelled: pd.DataFrame, version: str | None, threshold: float, costs: CostModel
) -> tuple[dict[str, float] | None, int, int]:
    if version is None or labelled.empty:
        return None, 0, 0
    rows = labelled[(labelled["model_version"] == version) & labelled["score"].notna()]
    if rows.empty:
        return None, 0, 0
    y, s = rows["label"].to_numpy(), rows["score"].to_numpy(dtype="float64")
    positives = int(y.sum())
    if positives == 0 or positives == len(y):
        return None, len(y), positives
    return classification_metrics(y, s, threshold, costs), len(y), positives


def gate_metrics(
    ledger: Ledger, project: str, environment: str, version: str, version_tags: dict[str, str]
) -> tuple[dict[str, float] | None, str]:
    """The metrics the gate measured for ``version`` when it was promoted to ``environment``
    (the candidate's metrics of the promoting verdict); else its registered holdout metrics."""
    entries = ledger.entries(project, environment)
    verdict_id = next(
        (
            e.verdict_id
            for e in reversed(entries)
            if e.action == "promote" and e.to_version == version and e.verdict_id
        ),
        None,
    )
    if verdict_id:
        for e in reversed(entries):
            if e.action == "validate" and e.verdict_id == verdict_id:
                raw = (e.details.get("verdict") or {}).get("candidate", {}).get("metrics")
                if isinstance(raw, dict):
                    return (
                        {k: float(v) for k, v in raw.items() if isinstance(v, int | float)},
                        f"verdict {verdict_id}",
                    )
    registered = {
        metric: float(version_tags[tags.holdout_metric(metric)])
        for metric in ("roc_auc", "pr_auc", "cost_per_1000")
        if tags.holdout_metric(metric) in version_tags
    }
    return (registered or None), "registered holdout metrics" if registered else ""


def _moves(ledger: Ledger, project: str, environment: str) -> list[RecordedEntry]:
    return [e for e in ledger.entries(project, environment) if e.action in ("promote", "rollback")]


def _is_monitors(entry: RecordedEntry, actor: str) -> bool:
    return (
        entry.actor == actor
        or entry.actor == MONITOR_ACTOR
        or "run_id" in entry.details
        or entry.reason.startswith("monitor run ")
    )


def _data_time(entry: RecordedEntry) -> datetime:
    """The data time of the run that took a monitor action (its ``as_of``, in the entry's
    details); the ledger time for entries written before runs recorded it."""
    raw = entry.details.get("as_of")
    if isinstance(raw, str):
        try:
            return _utc(datetime.fromisoformat(raw))
        except ValueError:
            pass
    return entry.at


def history(
    ledger: Ledger,
    client: Any,
    project: str,
    environment: str,
    version: str,
    tenure_start: datetime | None,
    window_start: datetime,
    actor: str,
) -> policy_core.History:
    """Earlier drift shares of ``version`` since it took over (MLflow monitoring runs, one per
    distinct window, newest first) and the monitor's earlier actions (the ledger)."""
    actions: list[policy_core.PastAction] = []
    for e in ledger.entries(project, environment):
        if e.action in policy_core.LEDGER_ACTIONS:
            actions.append(policy_core.PastAction(e.action, _data_time(e), e.to_version))
        elif e.action == "rollback" and _is_monitors(e, actor):
            actions.append(
                policy_core.PastAction(policy_core.ROLLBACK, _data_time(e), e.to_version)
            )
    shares: list[float] = []
    if client is not None:
        shares = _earlier_shares(client, project, environment, version, tenure_start, window_start)
    return policy_core.History(drift_shares=tuple(shares), actions=tuple(actions))


def _earlier_shares(
    client: Any,
    project: str,
    environment: str,
    version: str,
    tenure_start: datetime | None,
    window_start: datetime,
) -> list[float]:
    """Drift shares of the earlier windows that precede this one back to back: the latest run
    whose window ended by this window's start, then the latest that ended by that one's start,
    and so on (overlapping windows of more frequent runs are not counted twice)."""
    experiment = client.get_experiment_by_name(MONITORING_EXPERIMENT)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=(
            f"tags.`{RUN_TAG}.project` = '{project}' and "
            f"tags.`{RUN_TAG}.environment` = '{environment}' and "
            f"tags.`{RUN_TAG}.version` = '{version}'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1000,
    )
    since_ms = int(tenure_start.timestamp() * 1000) if tenure_start else 0
    windows: list[tuple[datetime, datetime, float]] = []
    for r in runs:
        share = r.data.metrics.get("drift_share")
        try:
            start = datetime.fromisoformat(r.data.tags[f"{RUN_TAG}.window_start"])
            end = datetime.fromisoformat(r.data.tags[f"{RUN_TAG}.window_end"])
        except (KeyError, ValueError):
            continue
        if r.info.start_time >= since_ms and share is not None:
            windows.append((start, end, float(share)))
    shares: list[float] = []
    boundary = window_start
    while True:
        earlier = [w for w in windows if w[1] <= boundary and w[0] < boundary]
        if not earlier:
            return shares
        start, _, share = max(earlier, key=lambda w: (w[1], w[0]))
        shares.append(share)
        boundary = start


# ----------------------------------------------------------------------------- run


def policy_of(project: Project) -> policy_core.Policy:
    m, p = project.spec.monitoring, project.spec.promotion
    return policy_core.Policy(
        primary_metric=project.spec.primary_metric,
        min_labels=m.min_labels,
        min_positives=m.min_positives,
        probation_days=m.probation_days,
        max_drop_in_probation=m.max_drop_in_probation,
        max_decay=m.max_decay,
        drift_share=m.drift_share,
        drift_windows=m.drift_windows,
        cooldown_hours=m.cooldown_hours,
        max_missing_share=m.max_missing_share,
        max_unseen_share=m.max_unseen_share,
        max_out_of_range_share=m.max_out_of_range_share,
        auto_rollback=m.auto_rollback,
        auto_retrain=m.auto_retrain,
        decision=p.decision,
        margin=p.decision_margin,
    )


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
    """One monitoring run of ``environment``'s holder; see the module docstring.

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
    import pandas as pd

    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    started = time.perf_counter()
    started_at = datetime.now(UTC)
    check_environment(settings, environment)
    project = project_for(settings, project_name)
    spec, monitoring = project.spec, project.spec.monitoring
    who = actor or MONITOR_ACTOR
    as_of = _utc(as_of or started_at)
    ledger = ledger_for(settings)
    holder = ledger.holder(spec.name, environment).version
    if holder is None:
        raise MonitorError(f"nothing holds {environment} for {spec.name}: nothing to monitor")
    run_id = f"{started_at:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    run_dir = monitoring_dir(settings) / spec.name / run_id  # made by the first file saved
    window = (as_of - timedelta(hours=monitoring.window_hours), as_of)
    notes: list[str] = []
    with mlflow_io.session(tracking(settings)) as client:
        lineage = _lineage(client, spec.registered_model, holder)
        lap("lineage")
        reference = load_reference(settings, project, lineage, monitoring.reference_rows)
        if not reference.profile.get("same_rows_as_training", True):
            notes.append(
                "the reference was rebuilt from data that changed since training (dataset "
                "fingerprints differ from the lineage's)"
            )
        lap("reference")

        table = read_log(settings, spec.name, environment, *window, columns=WINDOW_COLUMNS)
        frame = _window_frame(table, reference, lineage.features)
        del table
        lap("read window")
        lookback = max(monitoring.performance_window_days, monitoring.probation_days)
        scored_table = read_log(
            settings,
            spec.name,
            environment,
            as_of - timedelta(days=lookback),
            as_of,
            columns=LOOKBACK_COLUMNS,
        )
        scored = _scored_frame(scored_table, spec.entity)
        del scored_table
        lap("read look-back")
        if frame.empty:
            notes.append(f"no predictions logged between {window[0]:%F %T} and {window[1]:%F %T}")

        quality = measure_quality(frame, lineage.features, reference.profile)
        for name in reference.numerical:  # text that is no number is counted above; now NaN
            if name in frame.columns and frame[name].dtype == object:
                frame[name] = pd.to_numeric(frame[name], errors="coerce")
        lap("data quality")
        drift, drift_result = measure_drift(
            frame,
            reference,
            lineage.features,
            monitoring,
            run_dir,
            _seed(spec.name, environment, as_of.isoformat()),
        )
        del frame
        lap("drift (Evidently)")

        moves = _moves(ledger, spec.name, environment)
        last_move = moves[-1] if moves else None
        served = scored[scored["model_version"] == holder] if len(scored) else scored
        first_seen = served["logged_at"].min().to_pydatetime() if len(served) else None
        past = [v for v in ledger.past_holders(spec.name, environment) if v != holder]
        tenure = policy_core.Tenure(
            moved_by=last_move.action if last_move else None,
            moved_at=last_move.at if last_move else None,
            first_seen=first_seen,
            as_of=as_of,
            rollback_target=past[0] if past else None,
        )

        costs = CostModel(spec.costs.false_negative, spec.costs.false_positive)
        labelled = pd.DataFrame()
        performance = shadow = None
        performance_html: Path | None = None
        if len(scored):
            labels = read_known_labels(settings, project, as_of)
            maturity, maturity_source = label_maturity(project, labels)
            performance_start = as_of - timedelta(days=monitoring.performance_window_days)
            mature_by = as_of - maturity
            recent = scored[
                (scored["logged_at"] >= pd.Timestamp(performance_start))
                & (scored["logged_at"] <= pd.Timestamp(mature_by))
            ]
            if maturity > timedelta(0):
                notes.append(
                    f"performance judged on predictions logged {performance_start:%F %T} .. "
                    f"{mature_by:%F %T}: labels mature after {_days(maturity)} ({maturity_source})"
                    + (
                        "; none can: performance_window_days does not exceed it"
                        if mature_by <= performance_start
                        else ""
                    )
                )
            labelled = join_labels(recent, labels, project, monitoring.label_join_tolerance_seconds)
        lap("labels")
        live, rows, positives = _version_metrics(labelled, holder, lineage.threshold, costs)
        if rows:
            gate, source = gate_metrics(ledger, spec.name, environment, holder, lineage.tags)
            previous_version = (
                last_move.from_version if last_move and last_move.action == "promote" else None
            )
            prev_metrics: dict[str, float] | None = None
            prev_rows = prev_pos = 0
            if previous_version:
                prev_threshold = _threshold(client, spec.registered_model, previous_version)
                if prev_threshold is not None:
                    prev_metrics, prev_rows, prev_pos = _version_metrics(
                        labelled, previous_version, prev_threshold, costs
                    )
            performance = policy_core.Performance(
                version=holder,
                rows=rows,
                positives=positives,
                metrics=live or {},
                gate=gate,
                gate_source=source,
                previous_version=previous_version,
                previous=prev_metrics,
                previous_rows=prev_rows,
                previous_positives=prev_pos,
            )
            shadow, performance_html = _shadow_and_report(
                client, spec, project, labelled, holder, lineage.threshold, costs, live, run_dir
            )
        lap("performance")

        findings = policy_core.Findings(
            project=spec.name,
            environment=environment,
            version=holder,
            quality=quality,
            tenure=tenure,
            drift=drift,
            performance=performance,
            shadow=shadow,
        )
        past_actions = history(
            ledger,
            client,
            spec.name,
            environment,
            holder,
            last_move.at if last_move else None,
            window[0],
            who,
        )
        decision = policy_core.decide_actions(
            findings, past_actions, policy_of(project), now=as_of, dry_run=dry_run
        )
        lap("decide")

        summary_path = run_dir / "summary.json"
        base = _summary(
            run_id,
            started_at,
            as_of,
            window,
            spec.name,
            environment,
            holder,
            findings,
            decision,
            reference,
            drift_result,
            performance_html,
            notes,
            dry_run,
        )
        _write_json(summary_path, {**base, "outcomes": [], "timings": timings})
        mlflow_run_id = None
        if not dry_run:
            mlflow_run_id = _log_mlflow(
                client,
                settings,
                run_id,
                spec.name,
                environment,
                holder,
                window,
                findings,
                decision,
                run_dir,
            )
            lap("MLflow run")
    links = {
        "run_id": run_id,
        "as_of": as_of.isoformat(),
        "report_html": str(run_dir / "report.html") if drift_result else None,
        "performance_html": str(performance_html) if performance_html else None,
        "summary_json": str(summary_path),
        "mlflow_run_id": mlflow_run_id,
    }
    outcomes: list[Outcome] = []
    for action in decision.executable:
        outcomes.append(
            _execute(settings, project, environment, action, lineage, as_of, who, push, links)
        )
    if outcomes:
        lap("act")
    prometheus = None
    if not dry_run:
        prometheus = write_textfile(
            textfile_dir or settings.resolved_state_dir / "prometheus",
            spec.name,
            environment,
            holder,
            findings,
            decision,
            spec.primary_metric,
        )
    seconds = round(time.perf_counter() - started, 3)
    final = {
        **base,
        "outcomes": [_clean(dataclasses.asdict(o)) for o in outcomes],
        "pending_promotion": next(
            (o.details["pending_promotion"] for o in outcomes if "pending_promotion" in o.details),
            None,
        ),
        "timings": timings,
        "seconds": seconds,
        "mlflow_run_id": mlflow_run_id,
    }
    _write_json(summary_path, final)
    if mlflow_run_id is not None:
        try:
            with mlflow_io.session(tracking(settings)) as client:
                client.log_artifact(mlflow_run_id, str(summary_path))
        except Exception as exc:  # the run's files are complete on disk
            log.warning("could not update summary.json in MLflow run %s: %s", mlflow_run_id, exc)
    return MonitorRun(
        run_id=run_id,
        project=spec.name,
        environment=environment,
        version=holder,
        started_at=started_at,
        as_of=as_of,
        window=window,
        findings=findings,
        decision=decision,
        outcomes=outcomes,
        run_dir=run_dir,
        summary_json=summary_path,
        report_html=run_dir / "report.html" if drift_result else None,
        performance_html=performance_html,
        prometheus=prometheus,
        mlflow_run_id=mlflow_run_id,
        dry_run=dry_run,
        seconds=seconds,
        timings=timings,
        notes=notes,
    )


def _threshold(client: Any, model_name: str, version: str) -> float | None:
    try:
        value = mlflow_io.get_version(client, model_name, version).tags.get(tags.THRESHOLD)
    except ModelopsError:
        return None
    return float(value) if value is not None else None


def _shadow_and_report(
    client: Any,
    spec: Any,
    project: Project,
    labelled: pd.DataFrame,
    holder: str,
    threshold: float,
    costs: CostModel,
    live: dict[str, float] | None,
    run_dir: Path,
) -> tuple[policy_core.Shadow | None, Path | None]:
    """The shadow comparison (when the served version's labelled requests carry one) and the
    Evidently classification report, served and shadow side by side."""
    served = labelled[(labelled["model_version"] == holder) & labelled["score"].notna()]
    classifications = [evidently_io.Classification("served", SCORE, threshold)]
    frame = served.assign(**{SCORE: served["score"].astype("float64")})
    shadow = None
    if "shadow_version" in served.columns and served["shadow_version"].notna().any():
        version = str(served["shadow_version"].dropna().value_counts().index[0])
        both = frame[(frame["shadow_version"] == version) & frame["shadow_score"].notna()]
        shadow_threshold = _threshold(client, spec.registered_model, version)
        if shadow_threshold is not None and len(both):
            y = both["label"].to_numpy()
            served_scores = both[SCORE].to_numpy(dtype="float64")
            shadow_scores = both["shadow_score"].to_numpy(dtype="float64")
            positives = int(y.sum())
            m = spec.monitoring
            if policy_core.enough_labels(len(y), positives, policy_of(project)):
                shadow = policy_core.compare_shadow(
                    version,
                    y,
                    served_scores,
                    shadow_scores,
                    metric=spec.primary_metric,
                    decision=spec.promotion.decision,
                    margin=spec.promotion.decision_margin,
                    served_threshold=threshold,
                    shadow_threshold=shadow_threshold,
                    costs=costs,
                    served_metrics=classification_metrics(y, served_scores, threshold, costs),
                    shadow_metrics=classification_metrics(
                        y, shadow_scores, shadow_threshold, costs
                    ),
                )
            else:
                shadow = policy_core.Shadow(
                    version,
                    len(y),
                    positives,
                    live or {},
                    {},
                    {},
                    "",
                    False,
                    f"fewer than {m.min_labels} labelled requests or {m.min_positives} of a class",
                )
            frame = both.assign(shadow_model_score=both["shadow_score"].astype("float64"))
            classifications.append(
                evidently_io.Classification(
                    f"shadow v{version}", "shadow_model_score", shadow_threshold
                )
            )
    labels = frame["label"]
    if frame.empty or labels.nunique() < 2:
        return shadow, None
    sample = _sample(frame.assign(label=labels.astype("int64")), REPORT_SAMPLE_ROWS, 0)
    result = evidently_io.performance_report(
        sample,
        label="label",
        classifications=classifications,
        html=run_dir / "performance.html",
        json_path=run_dir / "performance.json",
    )
    return shadow, result.saved.html if result.saved else None


# ----------------------------------------------------------------------------- record


def _clean(value: Any) -> Any:
    """JSON-ready: NaN and infinities become None, times ISO text, paths strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _clean(value.item())
    return value


def _write_json(path: Path, body: dict[str, Any]) -> None:
    text = json.dumps(_clean(body), indent=2, sort_keys=False, allow_nan=False)
    _write_atomically(path, lambda p: p.write_text(text))


def _summary(
    run_id: str,
    started_at: datetime,
    as_of: datetime,
    window: tuple[datetime, datetime],
    project: str,
    environment: str,
    version: str,
    findings: policy_core.Findings,
    decision: policy_core.Decision,
    reference: Reference,
    drift_result: evidently_io.DriftResult | None,
    performance_html: Path | None,
    notes: list[str],
    dry_run: bool,
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "project": project,
        "environment": environment,
        "version": version,
        "started_at": started_at.isoformat(),
        "as_of": as_of.isoformat(),
        "window": {"start": window[0].isoformat(), "end": window[1].isoformat()},
        "dry_run": dry_run,
        "action": ", ".join(decision.kinds) or "none",
        "headline": decision.headline(),
        "findings": policy_core.findings_dict(findings),
        "decision": decision.to_dict(),
        "reference": {
            k: reference.profile.get(k)
            for k in ("version", "windows", "as_of", "rows", "sampled_rows", "fingerprints")
        },
        "reports": {
            "drift_html": "report.html" if drift_result else None,
            "drift_json": "evidently.json" if drift_result else None,
            "performance_html": performance_html.name if performance_html else None,
            "sample": {
                "rows_used": drift_result.current_rows if drift_result else 0,
                "reference_rows_used": drift_result.reference_rows if drift_result else 0,
                "evidently_quality_on_sample": {
                    "missing": drift_result.missing if drift_result else {},
                    "out_of_range": drift_result.out_of_range if drift_result else {},
                    "out_of_list": drift_result.out_of_list if drift_result else {},
                },
            },
        },
        "notes": notes,
    }


def _log_mlflow(
    client: Any,
    settings: Settings,
    run_id: str,
    project: str,
    environment: str,
    version: str,
    window: tuple[datetime, datetime],
    findings: policy_core.Findings,
    decision: policy_core.Decision,
    run_dir: Path,
) -> str | None:
    """An MLflow run of the monitoring experiment with the headline numbers and every file of
    the run's folder; None (and a warning) when MLflow refuses: the files are on disk."""
    try:
        experiment = mlflow_io.ensure_experiment(
            client, MONITORING_EXPERIMENT, settings.artifact_root
        )
        created = client.create_run(
            experiment,
            run_name=f"{project}-{environment}-{run_id}",
            tags={
                f"{RUN_TAG}.project": project,
                f"{RUN_TAG}.environment": environment,
                f"{RUN_TAG}.version": version,
                f"{RUN_TAG}.run_id": run_id,
                f"{RUN_TAG}.window_start": window[0].isoformat(),
                f"{RUN_TAG}.window_end": window[1].isoformat(),
                f"{RUN_TAG}.action": ", ".join(decision.kinds) or "none",
                f"{RUN_TAG}.headline": decision.headline()[:5000],
            },
        )
        mlflow_id = created.info.run_id
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        numbers = _headline_numbers(findings, decision)
        client.log_batch(
            mlflow_id,
            metrics=[
                Metric(key, value, stamp, 0)
                for key, value in numbers.items()
                if value is not None and math.isfinite(value)
            ],
        )
        for path in sorted(run_dir.iterdir()):
            if path.is_file():
                client.log_artifact(mlflow_id, str(path))
        client.set_terminated(mlflow_id)
        return str(mlflow_id)
    except Exception as exc:
        log.warning("monitoring run %s not logged to MLflow: %s", run_id, exc)
        return None


def _headline_numbers(
    findings: policy_core.Findings, decision: policy_core.Decision
) -> dict[str, float | None]:
    numbers: dict[str, float | None] = {
        "rows": float(findings.quality.rows),
        "drift_streak": float(decision.drift_streak),
        "in_probation": float(decision.in_probation),
        "data_quality_ok": float(not decision.retraining_blocked),
    }
    if findings.drift is not None:
        numbers["drift_share"] = findings.drift.share
        numbers["drifted_features"] = float(len(findings.drift.drifted))
        numbers["prediction_drift"] = findings.drift.prediction_score
        for name, score in findings.drift.scores.items():
            numbers[f"drift.{name}"] = score
    for name, q in findings.quality.features.items():
        numbers[f"missing.{name}"] = q.missing_share
    perf = findings.performance
    if perf is not None:
        numbers["labelled_rows"] = float(perf.rows)
        for metric, value in perf.metrics.items():
            numbers[f"live.{metric}"] = value
        for metric, value in (perf.gate or {}).items():
            numbers[f"gate.{metric}"] = value
    return numbers


def _prom_labels(**labels: str) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels.items()) + "}"


def prometheus_text(
    project: str,
    environment: str,
    version: str,
    findings: policy_core.Findings,
    decision: policy_core.Decision,
    primary_metric: str,
    at: datetime,
) -> str:
    """The run's headline numbers in the Prometheus text exposition format."""
    base = {"project": project, "environment": environment, "version": version}
    series: dict[str, tuple[str, list[tuple[dict[str, str], float]]]] = {}

    def add(name: str, help_: str, value: float | None, **extra: str) -> None:
        if value is None or not math.isfinite(float(value)):
            return
        series.setdefault(name, (help_, []))[1].append(({**base, **extra}, float(value)))

    add("modelops_monitor_last_run_timestamp_seconds", "End of the last run.", at.timestamp())
    add("modelops_monitor_rows", "Predictions in the window.", findings.quality.rows)
    add(
        "modelops_monitor_data_quality_ok",
        "1 when no data-quality rule failed.",
        float(not decision.retraining_blocked),
    )
    add(
        "modelops_monitor_in_probation",
        "1 while the version is on probation.",
        float(decision.in_probation),
    )
    add("modelops_monitor_drift_streak", "Consecutive drifting windows.", decision.drift_streak)
    if findings.drift is not None:
        add("modelops_monitor_drift_share", "Share of drifted features.", findings.drift.share)
        add(
            "modelops_monitor_prediction_drift",
            "Drift score of the model's score.",
            findings.drift.prediction_score,
        )
        for name, score in findings.drift.scores.items():
            add("modelops_monitor_feature_drift", "Drift score per feature.", score, feature=name)
            add(
                "modelops_monitor_feature_drifted",
                "1 when the feature drifted.",
                float(name in findings.drift.drifted),
                feature=name,
            )
    for name, q in findings.quality.features.items():
        add(
            "modelops_monitor_missing_share",
            "Share of predictions missing the feature.",
            q.missing_share,
            feature=name,
        )
    perf = findings.performance
    if perf is not None:
        add("modelops_monitor_labelled_rows", "Labelled predictions judged.", perf.rows)
        for metric in dict.fromkeys((primary_metric, "roc_auc", "cost_per_1000", "recall")):
            add(
                "modelops_monitor_live_metric",
                "Live metric on labelled predictions.",
                perf.metrics.get(metric),
                metric=metric,
            )
            add(
                "modelops_monitor_gate_metric",
                "The metric when the version was gated.",
                (perf.gate or {}).get(metric),
                metric=metric,
            )
    for kind in policy_core.ACTION_KINDS:
        add(
            "modelops_monitor_action",
            "1 when the last run took this action.",
            float(kind in decision.kinds),
            action=kind,
        )
    lines: list[str] = []
    for name, (help_, points) in series.items():
        lines += [f"# HELP {name} {help_}", f"# TYPE {name} gauge"]
        lines += [f"{name}{_prom_labels(**labels)} {value:.10g}" for labels, value in points]
    return "\n".join(lines) + "\n"


def write_textfile(
    directory: Path,
    project: str,
    environment: str,
    version: str,
    findings: policy_core.Findings,
    decision: policy_core.Decision,
    primary_metric: str,
) -> Path:
    """``<directory>/modelops_monitor_<project>_<environment>.prom`` (node_exporter's textfile
    collector reads ``*.prom``), replaced atomically."""
    path = directory / f"modelops_monitor_{project}_{environment}.prom"
    text = prometheus_text(
        project, environment, version, findings, decision, primary_metric, datetime.now(UTC)
    )
    _write_atomically(path, lambda p: p.write_text(text))
    return path


def _record(
    settings: Settings,
    kind: str,
    project: str,
    environment: str,
    actor: str,
    reason: str,
    *,
    from_version: str | None,
    to_version: str | None,
    details: dict[str, Any],
    verdict_id: str | None = None,
) -> RecordedEntry:
    from modelops.core import ledger as ledger_core

    if kind not in ledger_core.ACTIONS:
        raise MonitorError(
            f"the ledger does not record '{kind}' entries (modelops.core.ledger.ACTIONS lacks "
            f"it); the monitor's action was not recorded"
        )
    return ledger_for(settings).append(
        LedgerEntry(
            action=kind,
            project=project,
            environment=environment,
            actor=actor,
            reason=reason[:2000],
            from_version=from_version,
            to_version=to_version,
            verdict_id=verdict_id,
            details=_clean(details),
        )
    )


# ----------------------------------------------------------------------------- act


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
) -> Outcome:
    """Carry out one action and record it; a failure is an outcome, never a half-recorded
    success."""
    try:
        if action.kind == policy_core.ROLLBACK:
            return _rollback(settings, project, environment, action, actor, push, links)
        if action.kind == policy_core.RETRAIN:
            return _retrain(
                settings, project, environment, action, lineage, as_of, actor, push, links
            )
        if action.kind == policy_core.PROPOSE:
            entry = _record(
                settings,
                policy_core.PROPOSE,
                project.spec.name,
                environment,
                actor,
                f"monitor run {links['run_id']}: {action.reason}",
                from_version=lineage.version,
                to_version=action.target,
                details={
                    **links,
                    "evidence": action.evidence,
                    "pending_promotion": {
                        "version": action.target,
                        "environment": environment,
                        "source": "shadow",
                    },
                },
            )
            return Outcome(
                action.kind,
                True,
                f"v{action.target} proposed for {environment}",
                entry.seq,
                {
                    "pending_promotion": {
                        "version": action.target,
                        "environment": environment,
                        "source": "shadow",
                        "ledger_seq": entry.seq,
                    }
                },
            )
        entry = _record(
            settings,
            policy_core.ALERT,
            project.spec.name,
            environment,
            actor,
            f"monitor run {links['run_id']}: {action.reason}",
            from_version=lineage.version,
            to_version=action.target,
            details={**links, "evidence": action.evidence},
        )
        return Outcome(action.kind, True, action.reason, entry.seq)
    except ModelopsError as exc:
        log.error("monitor %s failed: %s", action.kind, exc)
        return Outcome(action.kind, False, f"failed: {exc}", exit_code=exc.exit_code)


def _rollback(
    settings: Settings,
    project: Project,
    environment: str,
    action: policy_core.Action,
    actor: str,
    push: bool,
    links: dict[str, Any],
) -> Outcome:
    """The path of ``modelops rollback``: the ledger move (which moves the alias), then the
    GitOps commit; the reason names the run and its report, the details carry the evidence."""
    from modelops.services import promote

    report = links.get("report_html") or links["summary_json"]
    reason = f"monitor run {links['run_id']}: {action.reason}; report {report}"
    details = {**links, "evidence": action.evidence}
    kwargs: dict[str, Any] = {"details": _clean(details)}
    lag: ModelopsError | None = None
    try:
        move = promote.rollback(
            settings,
            project.spec.name,
            environment,
            reason=reason[:2000],
            to_version=action.target,
            actor=actor,
            **kwargs,
        )
        moved = {
            "from_version": move.from_version,
            "to_version": move.to_version,
            "ledger_seq": move.entry.seq,
        }
    except promote.AliasLagError as exc:  # the ledger moved; the alias follows on models sync
        lag = exc
        moved = {"to_version": action.target, "alias_lags": str(exc)}
    gitops = _gitops(
        settings, project.spec.name, environment, actor, push, rollback=moved, reason=reason
    )
    detail = f"rolled back {environment} to v{action.target}; {gitops}"
    if lag is not None:
        return Outcome(
            action.kind,
            True,
            f"{detail}; {lag}",
            None,
            {**moved, "gitops": gitops},
            exit_code=lag.exit_code,
        )
    seq = moved.get("ledger_seq")
    return Outcome(
        action.kind, True, detail, int(seq) if seq else None, {**moved, "gitops": gitops}
    )


def _gitops(
    settings: Settings,
    project: str,
    environment: str,
    actor: str,
    push: bool,
    *,
    rollback: dict[str, Any] | None = None,
    reason: str = "",
) -> str:
    """Write the environment's holder to the GitOps repository, as ``modelops rollback`` and
    ``modelops deploy`` do; a failure is reported, never raised (the ledger is the truth and
    ``modelops deploy`` writes the commit later)."""
    from modelops.services import deploy

    try:
        if rollback is not None:
            result = deploy.record_rollback(
                settings,
                project,
                environment,
                from_version=rollback.get("from_version"),
                to_version=str(rollback["to_version"]),
                reason=reason,
                actor=actor,
                push=push,
            )
        else:
            result = deploy.deploy(settings, project, environment, actor=actor, push=push)
    except ModelopsError as exc:
        return f"GitOps not updated ({exc}); run 'modelops deploy {project} --env {environment}'"
    commit = getattr(result, "commit", None)
    return f"GitOps commit {commit[:12]}" if commit else "GitOps already up to date"


def latest_windows(
    project: Project, labels: pd.DataFrame, as_of: datetime
) -> dict[str, tuple[date, date]]:
    """project.yaml's windows shifted (lengths and gaps kept) so that the holdout ends on the
    last day whose labels are all known by ``as_of``: the latest completely labelled data.

    ``labels``: the whole label table (:func:`~modelops.services.datasets.read_labels`); a day is
    complete when no event of it or before it still waits for its label.
    """
    import pandas as pd

    spec = project.spec
    cut = pd.Timestamp(as_of)
    stamps = pd.to_datetime(labels[spec.label.timestamp], utc=True)
    past = stamps <= cut
    known = past
    if spec.label.available_at:
        known = past & (pd.to_datetime(labels[spec.label.available_at], utc=True) <= cut)
    if not known.any():
        raise DataError(f"{spec.name}: no label is known by {as_of:%Y-%m-%d}; nothing to train on")
    last = stamps[known].max().date()
    waiting = stamps[past & ~known]
    if len(waiting):
        last = min(last, waiting.min().date() - timedelta(days=1))
    shift = last - spec.windows.holdout.end
    return {
        name: (getattr(spec.windows, name).start + shift, getattr(spec.windows, name).end + shift)
        for name in WINDOWS
    }


def _judged_on(
    settings: Settings, project: Project, windows: dict[str, tuple[date, date]], run_id: str
) -> Settings:
    """Settings whose projects folder holds ``project`` with ``windows``, so that the gate judges
    a retrained version on the holdout of its own training windows (project.yaml's holdout may
    lie inside them). The file is kept with the run for audit."""
    import yaml

    spec = project.spec
    if all(
        windows[w] == (getattr(spec.windows, w).start, getattr(spec.windows, w).end)
        for w in WINDOWS
    ):
        return settings
    folder = settings.resolved_state_dir / "monitoring-retrain" / run_id / "projects"
    data = spec.model_dump(mode="json")
    data["windows"] = {k: {"start": str(a), "end": str(b)} for k, (a, b) in windows.items()}
    (folder / spec.name).mkdir(parents=True, exist_ok=True)
    (folder / spec.name / "project.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return settings.model_copy(update={"projects_dir": folder})


def _retrain(
    settings: Settings,
    project: Project,
    environment: str,
    action: policy_core.Action,
    lineage: Lineage,
    as_of: datetime,
    actor: str,
    push: bool,
    links: dict[str, Any],
) -> Outcome:
    """Train on the latest labelled windows, then gate and promote like the promote workflow:
    through every environment below ``environment`` (automatic where the project's
    ``auto_promote_staging`` allows and no approval is needed), then the verdict against
    ``environment``; a pass is promoted there only with ``auto_promote_production`` and no
    approval needed, else it waits as a pending promotion. The candidate is gated first and the
    baseline trained beside it only if the candidate fails its first gate."""
    from modelops.services import gate, promote, train

    spec = project.spec
    name = spec.name
    from modelops.services.datasets import read_labels

    windows = latest_windows(project, read_labels(settings, project), as_of)
    run_tag = f"monitor run {links['run_id']}"
    base = {
        **links,
        "evidence": action.evidence,
        "reason": action.reason,
        "windows": {k: [str(a), str(b)] for k, (a, b) in windows.items()},
    }
    if all(windows[w] == lineage.windows.get(w) for w in WINDOWS):
        entry = _record(
            settings,
            policy_core.ALERT,
            name,
            environment,
            actor,
            f"{run_tag}: {action.reason}; not retrained: no labelled data newer than "
            f"v{lineage.version}'s windows",
            from_version=lineage.version,
            to_version=None,
            details=base,
        )
        return Outcome(action.kind, False, "no newer labelled data to retrain on", entry.seq)
    try:
        trained = train.train(settings, name, as_of=as_of, windows=windows)
    except ModelopsError as exc:
        entry = _record(
            settings,
            policy_core.RETRAIN,
            name,
            environment,
            actor,
            f"{run_tag}: {action.reason}; training failed: {exc}",
            from_version=lineage.version,
            to_version=None,
            details={**base, "error": str(exc)},
        )
        return Outcome(action.kind, False, f"training failed: {exc}", entry.seq)

    order = list(settings.environments)
    judged = _judged_on(settings, project, windows, links["run_id"])
    targets = [*order[: order.index(environment)], environment]
    needs_approval = set(approval_required(settings, project))
    verdicts: list[dict[str, Any]] = []
    promotions: list[dict[str, Any]] = []
    gitops: list[str] = []
    chosen: str | None = None
    pending: dict[str, Any] | None = None
    stopped = ""
    for version in (trained.candidate.version, trained.baseline.version):
        verdicts.append(_gate(gate, judged, name, version, targets[0], as_of, actor))
        if verdicts[-1]["passed"]:
            chosen = version
            break
    if chosen is None:
        stopped = f"no retrained version passed the gate against {targets[0]}"
    for position, env in enumerate(targets if chosen is not None else []):
        assert chosen is not None
        if position:
            verdicts.append(_gate(gate, judged, name, chosen, env, as_of, actor))
            if not verdicts[-1]["passed"]:
                stopped = f"v{chosen} failed the gate against {env}: {verdicts[-1]['failed']}"
                break
        automatic = (
            spec.monitoring.auto_promote_production
            if env == environment
            else spec.promotion.auto_promote_staging
        )
        if env in needs_approval or not automatic:
            why = "needs an approval" if env in needs_approval else "automatic promotion is off"
            pending = {
                "version": chosen,
                "environment": env,
                "verdict_id": verdicts[-1]["id"],
                "source": "retrain",
                "why": why,
            }
            stopped = f"v{chosen} passed the gate against {env}; {env} {why}: pending"
            break
        reason = (
            f"{run_tag}: retrained ({action.reason}); passed the gate (verdict "
            f"{verdicts[-1]['id']})"
        )
        try:
            move = promote.promote(
                settings, name, chosen, env, approver=actor, reason=reason[:2000]
            )
        except promote.AliasLagError as exc:
            promotions.append({"environment": env, "version": chosen, "alias_lags": str(exc)})
        else:
            promotions.append({"environment": env, "version": chosen, "ledger_seq": move.entry.seq})
        gitops.append(f"{env}: {_gitops(settings, name, env, actor, push)}")
    details = {
        **base,
        "candidate": trained.candidate.version,
        "baseline": trained.baseline.version,
        "chosen": chosen,
        "verdicts": verdicts,
        "promotions": promotions,
        "gitops": gitops,
        "pending_promotion": pending,
        "stopped": stopped,
    }
    entry = _record(
        settings,
        policy_core.RETRAIN,
        name,
        environment,
        actor,
        f"{run_tag}: {action.reason}; trained v{trained.candidate.version} (candidate) and "
        f"v{trained.baseline.version} (baseline); {stopped or 'promoted to ' + environment}",
        from_version=lineage.version,
        to_version=chosen or trained.candidate.version,
        details=details,
        verdict_id=verdicts[-1]["id"] if verdicts else None,
    )
    if pending is not None and pending["environment"] == environment:
        proposal = _record(
            settings,
            policy_core.PROPOSE,
            name,
            environment,
            actor,
            f"{run_tag}: retrained v{chosen} passed the gate against {environment} "
            f"(verdict {pending['verdict_id']}); promotion waits for approval",
            from_version=lineage.version,
            to_version=chosen,
            details={**links, "evidence": action.evidence, "pending_promotion": pending},
            verdict_id=pending["verdict_id"],
        )
        pending = {**pending, "ledger_seq": proposal.seq}
    summary = {
        k: details[k]
        for k in ("candidate", "baseline", "chosen", "verdicts", "promotions", "gitops", "stopped")
    }
    if pending is not None:
        summary["pending_promotion"] = pending
    done = chosen is not None
    lagging = [p for p in promotions if "alias_lags" in p]
    return Outcome(
        action.kind,
        done,
        f"trained v{trained.candidate.version}/v{trained.baseline.version}; "
        f"{stopped or 'promoted to ' + environment}"
        + "".join(f"; {p['alias_lags']}" for p in lagging),
        entry.seq,
        summary,
        exit_code=promote.AliasLagError.exit_code if lagging else None,
    )


def _gate(
    gate: Any,
    settings: Settings,
    project: str,
    version: str,
    env: str,
    as_of: datetime,
    actor: str,
) -> dict[str, Any]:
    try:
        verdict = gate.validate(settings, project, version, against=env, as_of=as_of, actor=actor)
    except ModelopsError as exc:
        return {
            "version": version,
            "environment": env,
            "id": None,
            "passed": False,
            "failed": f"could not evaluate: {exc}",
        }
    return {
        "version": version,
        "environment": env,
        "id": verdict.id,
        "passed": verdict.passed,
        "failed": ", ".join(verdict.failed_rules),
    }


# ----------------------------------------------------------------------------- watch


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


__all__ = [
    "MONITORING_EXPERIMENT",
    "MONITOR_ACTOR",
    "MonitorError",
    "MonitorRun",
    "Outcome",
    "decode_json",
    "join_labels",
    "latest_windows",
    "measure_quality",
    "prometheus_text",
    "read_known_labels",
    "read_log",
    "run",
    "watch",
]
