"""Estimated performance of the serving version before its labels arrive, and the check of the
estimate once they do (docs/monitoring.md, "Estimated performance").

The calibration and the ROC-AUC reference come from the **holdout rows only** of the version's
monitoring reference (:mod:`.reference`: training and holdout rows scored by the version
itself), never its training rows (the model has seen their labels; calibrating on them
under-estimates the cost). Both are cached beside the reference, keyed by its checksum.

Per run: every chunk (``monitoring.estimation.chunk``) of the serving version's logged scores
in the look-back is estimated at the version's threshold with the project's costs, and so is
the whole look-back (the window the probation rule reads). On probation, when that window is
worse than the gate-time cost, the version a rollback would return to is estimated on the same
logged predictions (its registered model scores the logged features; its own holdout
calibration). Once labels mature, realised and estimated cost are compared on the same rows
(:func:`modelops.core.estimated_judgement.check_estimate`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelops.config.project import Project
from modelops.config.settings import Settings
from modelops.core import monitoring as policy_core
from modelops.core.errors import ModelopsError
from modelops.core.estimated_judgement import (
    EstimateCheck,
    Estimated,
    PreviousEstimate,
    calibration_se,
    check_estimate,
    compare_estimates,
    judge_window,
    paired_cost_gain,
    previous_not_compared,
)
from modelops.core.estimation.calibration import Calibration, calibrate, fit_calibration
from modelops.core.estimation.cbpe import (
    ChunkEstimate,
    Reference,
    estimate_chunk,
    estimate_chunks,
    reference_from_holdout,
)
from modelops.core.metrics import CostModel
from modelops.services.monitor import reference as reference_io
from modelops.services.monitor.common import SCORE, MonitorError, _write_atomically
from modelops.services.monitor.lineage import Lineage

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

_FORMAT = "modelops estimation reference 1"


@dataclass(frozen=True)
class Basis:
    """What every estimate of a version rests on: its holdout calibration, its ROC-AUC
    reference, and the standard error of cost per 1,000 the calibration carries."""

    calibration: Calibration
    reference: Reference
    cost_se: float


def costs_of(project: Project) -> CostModel:
    c = project.spec.decision_costs
    return CostModel(c.false_negative, c.false_positive)


def basis(project: Project, lineage: Lineage, ref: reference_io.Reference) -> Basis:
    """The version's calibration and estimation reference from its reference's holdout rows:
    from the cache beside the reference when it matches the reference's checksum and the
    version's threshold, else fitted (and cached).

    Raises:
        MonitorError: the reference holds no holdout rows with both classes.
    """
    cache = ref.path.with_suffix(".estimation.json")
    sha = ref.profile.get("sha256")
    if cache.is_file():
        try:
            body = json.loads(cache.read_text())
            if (
                body.get("format") == _FORMAT
                and body.get("sha256") == sha
                and body.get("threshold") == lineage.threshold
            ):
                return Basis(
                    Calibration.model_validate(body["calibration"]),
                    Reference.model_validate(body["reference"]),
                    float(body["cost_se"]),
                )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("refitting the estimation reference %s (%s)", cache, exc)
    scores, labels = _holdout(project, lineage, ref)
    calibration = fit_calibration(scores, labels)
    fitted = Basis(
        calibration,
        reference_from_holdout(scores, labels),
        calibration_se(
            calibrate(calibration, scores),
            scores,
            threshold=lineage.threshold,
            costs=costs_of(project),
        ),
    )
    body = {
        "format": _FORMAT,
        "sha256": sha,
        "version": lineage.version,
        "threshold": lineage.threshold,  # the cost's standard error depends on it
        "calibration": fitted.calibration.model_dump(mode="json"),
        "reference": fitted.reference.model_dump(mode="json"),
        "cost_se": fitted.cost_se,
    }
    _write_atomically(cache, lambda p: p.write_text(json.dumps(body, indent=1)))
    return fitted


def _holdout(project: Project, lineage: Lineage, ref: reference_io.Reference) -> tuple[Any, Any]:
    frame = ref.frame
    label = project.spec.label.column
    if "_window" not in frame.columns or label not in frame.columns:
        raise MonitorError(
            f"the monitoring reference of v{lineage.version} ({ref.path}) has no holdout labels "
            "to calibrate on"
        )
    holdout = frame[(frame["_window"] == "holdout") & frame[SCORE].notna() & frame[label].notna()]
    labels = holdout[label].astype("int64").to_numpy()
    if not len(labels) or labels.min() == labels.max():
        raise MonitorError(
            f"v{lineage.version}'s holdout rows in its monitoring reference hold "
            f"{len(labels)} labelled rows of one class at most: nothing to calibrate on"
        )
    return holdout[SCORE].to_numpy(dtype="float64"), labels


def served_scores(scored: pd.DataFrame, version: str) -> pd.DataFrame:
    """The look-back's predictions of ``version`` with a score."""
    if scored.empty or "score" not in scored.columns:
        return scored.iloc[0:0]
    rows = scored[(scored["model_version"] == version) & scored["score"].notna()]
    return rows.sort_values("logged_at", kind="stable")


def estimate(
    project: Project,
    lineage: Lineage,
    found: Basis,
    served: pd.DataFrame,
    gate: dict[str, float] | None,
) -> Estimated | None:
    """The serving version's estimate per chunk and over the whole look-back, judged against
    its gate-time cost; None without logged scores."""
    if served.empty:
        return None
    settings = project.spec.monitoring.estimation
    scores = served["score"].to_numpy(dtype="float64")
    times = served["logged_at"]
    common: dict[str, Any] = {
        "calibration": found.calibration,
        "threshold": lineage.threshold,
        "costs": costs_of(project),
        "reference": found.reference,
        "z": settings.z,
    }
    chunks = estimate_chunks(scores, times, period=settings.chunk, **common)
    whole = estimate_chunk(
        scores,
        start=times.iloc[0].to_pydatetime(),
        end=times.iloc[-1].to_pydatetime(),
        **common,
    )
    gate_cost = (gate or {}).get("cost_per_1000")
    judged, worse, detail = judge_window(whole, gate_cost, min_rows=settings.min_rows_per_chunk)
    cal = found.calibration
    return Estimated(
        version=lineage.version,
        calibration={
            "method": cal.method,
            "ece_raw": cal.ece_raw,
            "ece_calibrated": cal.ece_calibrated,
            "rows": cal.rows,
            "positives": cal.positives,
        },
        threshold=lineage.threshold,
        gate_cost_per_1000=gate_cost,
        gate_roc_auc=(gate or {}).get("roc_auc"),
        chunks=tuple(chunks),
        window=whole,
        worse=worse,
        judged=judged,
        detail=detail,
    )


def with_previous(estimated: Estimated, previous: PreviousEstimate) -> Estimated:
    from dataclasses import replace

    return replace(estimated, previous=previous)


def estimate_previous(
    settings: Settings,
    client: Any,
    project: Project,
    environment: str,
    served: pd.DataFrame,
    current: Estimated,
    current_basis: Basis,
    target: str,
) -> PreviousEstimate:
    """``target`` (the version a rollback returns to) estimated on ``served`` (the serving
    version's logged predictions of the look-back): its registered model scores the logged
    features and its own holdout calibration makes them probabilities. Anything that keeps the
    comparison from being like for like makes it *not evaluated* (the run then alerts)."""
    from modelops.integrations import mlflow as mlflow_io
    from modelops.services.gate.models import registered_model
    from modelops.services.monitor import same_rows
    from modelops.services.monitor.lineage import lineage_of

    spec, holder = project.spec, current.version
    try:
        name = spec.registered_model
        models = [
            registered_model("served", mlflow_io.get_version(client, name, holder)),
            registered_model("previous", mlflow_io.get_version(client, name, target)),
        ]
        previous_lineage = lineage_of(client, name, target)
        previous_ref = reference_io.load_reference(
            settings, project, previous_lineage, spec.monitoring.reference_rows
        )
        found = basis(project, previous_lineage, previous_ref)
    except ModelopsError as exc:
        return previous_not_compared(target, holder, f"v{target} not estimated: {exc}")
    if models[0].artifact_sha256 and models[0].artifact_sha256 == models[1].artifact_sha256:
        return compare_estimates(target, holder, current.window, current.window, identical=True)
    try:
        frame = same_rows.logged_features(settings, spec.name, environment, served, models)
        same_rows.load_models(models, spec.registered_model)
    except ModelopsError as exc:
        return previous_not_compared(target, holder, f"v{target} not estimated: {exc}")
    scores = models[1].scores(frame)
    z, costs = spec.monitoring.estimation.z, costs_of(project)
    previous = estimate_chunk(
        scores,
        calibration=found.calibration,
        threshold=models[1].threshold,
        costs=costs,
        reference=found.reference,
        z=z,
    )
    logged = served["score"].to_numpy(dtype="float64")
    interval = paired_cost_gain(
        (logged, calibrate(current_basis.calibration, logged), current.threshold),
        (scores, calibrate(found.calibration, scores), models[1].threshold),
        costs,
        calibration_se=(current_basis.cost_se, found.cost_se),
        z=z,
    )
    return compare_estimates(target, holder, current.window, previous, interval=interval)


def check(
    project: Project,
    lineage: Lineage,
    found: Basis,
    labelled: pd.DataFrame,
    policy: policy_core.Policy,
) -> EstimateCheck | None:
    """Realised against estimated cost on the serving version's matured, labelled predictions
    (the same cohorts the estimate covered); None until there are enough labels to judge."""
    if labelled.empty:
        return None
    rows = labelled[(labelled["model_version"] == lineage.version) & labelled["score"].notna()]
    if rows.empty:
        return None
    y = rows["label"].to_numpy()
    if not policy_core.enough_labels(len(y), int(y.sum()), policy):
        return None
    settings = project.spec.monitoring.estimation
    scores = rows["score"].to_numpy(dtype="float64")
    cohorts = rows["logged_at"].dt.floor(settings.chunk).nunique()
    return check_estimate(
        y,
        calibrate(found.calibration, scores),
        scores,
        threshold=lineage.threshold,
        costs=costs_of(project),
        cohorts=int(cohorts),
        reference_se=found.cost_se,
        z=settings.z,
    )


__all__ = ["Basis", "ChunkEstimate", "basis", "check", "estimate", "estimate_previous"]


def measure(
    settings: Settings,
    client: Any,
    ledger: Any,
    project: Project,
    environment: str,
    lineage: Lineage,
    ref: reference_io.Reference,
    scored: pd.DataFrame,
    labelled: pd.DataFrame,
    tenure: policy_core.Tenure,
    notes: list[str],
) -> tuple[Estimated | None, EstimateCheck | None]:
    """The run's estimate of the serving version over the look-back (with, on probation when it
    is worse, the rollback target on the same rows) and the check of the estimate on the
    matured predictions. Off (``monitoring.estimation.enabled`` false): nothing. An estimate
    that cannot be made is a note saying why, and no estimate-based action follows."""
    from modelops.services.monitor.decide import policy_of
    from modelops.services.monitor.performance import gate_metrics

    spec = project.spec
    if not spec.monitoring.estimation.enabled:
        return None, None
    served = served_scores(scored, lineage.version)
    try:
        found = basis(project, lineage, ref)
        gate, _ = gate_metrics(ledger, spec.name, environment, lineage.version, lineage.tags)
        estimated = estimate(project, lineage, found, served, gate)
    except (ModelopsError, ValueError) as exc:
        notes.append(f"estimated performance not evaluated: {exc}")
        return None, None
    if estimated is None:
        notes.append(f"estimated performance: no logged scores of v{lineage.version}")
        return None, None
    policy = policy_of(project)
    target = tenure.rollback_target
    if estimated.worse and target is not None and policy_core.in_probation(tenure, policy):
        previous = estimate_previous(
            settings, client, project, environment, served, estimated, found, target
        )
        estimated = with_previous(estimated, previous)
    return estimated, check(project, lineage, found, labelled, policy)
