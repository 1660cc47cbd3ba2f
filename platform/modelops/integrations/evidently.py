"""Evidently (0.7): run the monitoring reports, save them as HTML and JSON, read the numbers back.

Two reports per monitoring run:

- :func:`drift_report`: per-column drift of the current rows against the reference rows
  (``DataDriftPreset`` with the chosen methods, and ``ValueDrift`` of the score for prediction
  drift); the run's data-quality figures are computed on every row by the monitor, not on the
  report's sample, so the report does not count them a second time;
- :func:`performance_report`: classification quality (``ClassificationPreset``) of one or more
  scored columns against the labels, side by side (the served version and a shadow).

The drift report returns the numbers the drift policy needs; the performance report only its
size, because the monitor's performance figures come from every labelled row, not the report's
sample (one figure each, not two). Both save ``.html`` (Evidently's own self-contained page) and
``.json`` (``Snapshot.dict()``: metrics and tests). What the numbers mean for the model is not
decided here.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

P_VALUE_METHODS = frozenset({"ks", "chisquare", "z", "mannw", "t_test", "es", "fisher_exact"})
"""Evidently methods whose score is a p-value (drift when below the threshold); every other
method's score is a distance (drift at or above it)."""


@dataclass(frozen=True)
class Saved:
    html: Path
    json: Path
    seconds: float


@dataclass(frozen=True)
class ColumnDrift:
    score: float
    method: str
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    """Per-feature drift, the share Evidently counts as drifted, and the score's drift."""

    columns: dict[str, ColumnDrift]
    share: float
    prediction: ColumnDrift | None
    current_rows: int = 0
    reference_rows: int = 0
    saved: Saved | None = None

    @property
    def drifted(self) -> list[str]:
        return [name for name, c in self.columns.items() if c.drifted]


@dataclass(frozen=True)
class Classification:
    """One scored column judged against the labels: ``name``, its score column, the decision
    threshold."""

    name: str
    score: str
    threshold: float


@dataclass(frozen=True)
class PerformanceResult:
    """The report of a sample; the monitor's own figures come from every labelled row
    (:func:`modelops.core.metrics.classification_metrics`), so the report's are not parsed."""

    rows: int
    saved: Saved | None = None


def _definition(numerical: list[str], categorical: list[str], classifications: Any = None) -> Any:
    from evidently import DataDefinition

    return DataDefinition(
        numerical_columns=list(numerical),
        categorical_columns=list(categorical),
        classification=classifications,
    )


def _drifted(method: str, score: float, threshold: float) -> bool:
    if not math.isfinite(score):
        return False
    return score < threshold if method in P_VALUE_METHODS else score >= threshold


def _save(snapshot: Any, html: Path, json_path: Path, started: float) -> Saved:
    html.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(html))
    snapshot.save_json(str(json_path))
    return Saved(html, json_path, time.perf_counter() - started)


def drift_report(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    numerical: list[str],
    categorical: list[str],
    score: str | None,
    numerical_method: str,
    categorical_method: str,
    threshold: float | None,
    drift_share: float,
    html: Path | None = None,
    json_path: Path | None = None,
) -> DriftResult:
    """Drift of ``current`` against ``reference`` for the named columns.

    Args:
        score: the prediction column (its drift is prediction drift), or None.
        numerical_method, categorical_method: Evidently stattest names for each column type
            (the score is numerical).
        threshold: one threshold for every column; None: each method's default.
        drift_share: the share of drifted columns Evidently's dataset-drift summary uses.
        html, json_path: where to save the report (both, or neither).
    """
    from evidently import Dataset, Report
    from evidently.metrics import RowCount, ValueDrift
    from evidently.presets import DataDriftPreset

    started = time.perf_counter()
    features = [*numerical, *categorical]
    metrics: list[Any] = [
        RowCount(),
        DataDriftPreset(
            columns=features,
            num_method=numerical_method,
            cat_method=categorical_method,
            threshold=threshold,
            drift_share=drift_share,
            include_tests=False,
        ),
    ]
    if score is not None:
        metrics.append(ValueDrift(column=score, method=numerical_method, threshold=threshold))
    columns = [*features, *([score] if score is not None else [])]
    definition = _definition([*numerical, *([score] if score else [])], categorical)
    snapshot = Report(metrics, include_tests=False).run(
        Dataset.from_pandas(current[columns].reset_index(drop=True), data_definition=definition),
        Dataset.from_pandas(reference[columns].reset_index(drop=True), data_definition=definition),
    )
    result: dict[str, Any] = {"columns": {}, "share": math.nan, "prediction": None}
    for item in snapshot.dict()["metrics"]:
        config, value = item.get("config", {}), item.get("value")
        kind = str(config.get("type", "")).rsplit(":", 1)[-1]
        column = config.get("column")
        if kind == "ValueDrift":
            method = str(config.get("method"))
            limit = float(config.get("threshold"))
            drift = ColumnDrift(float(value), method, limit, _drifted(method, float(value), limit))
            if column == score and column not in features:
                result["prediction"] = drift
            else:
                result["columns"][column] = drift
        elif kind == "DriftedColumnsCount":
            result["share"] = float(value["share"])
    saved = _save(snapshot, html, json_path, started) if html and json_path else None
    return DriftResult(
        columns={c: result["columns"][c] for c in features if c in result["columns"]},
        share=result["share"],
        prediction=result["prediction"],
        current_rows=len(current),
        reference_rows=len(reference),
        saved=saved,
    )


def performance_report(
    current: pd.DataFrame,
    *,
    label: str,
    classifications: list[Classification],
    html: Path | None = None,
    json_path: Path | None = None,
) -> PerformanceResult:
    """Classification quality of each scored column of ``current`` against ``label`` (0/1),
    at its own threshold, side by side in one report."""
    from evidently import BinaryClassification, Dataset, Report
    from evidently.presets import ClassificationPreset

    started = time.perf_counter()
    definition = _definition(
        [c.score for c in classifications],
        [],
        [
            BinaryClassification(name=c.name, target=label, prediction_probas=c.score, pos_label=1)
            for c in classifications
        ],
    )
    frame = current[[label, *(c.score for c in classifications)]].reset_index(drop=True)
    metrics = [
        ClassificationPreset(probas_threshold=c.threshold, classification_name=c.name)
        for c in classifications
    ]
    snapshot = Report(metrics, include_tests=False).run(
        Dataset.from_pandas(frame, data_definition=definition), None
    )
    saved = _save(snapshot, html, json_path, started) if html and json_path else None
    return PerformanceResult(len(frame), saved)
