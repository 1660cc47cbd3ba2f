"""Classification quality of the serving version on the predictions whose labels are known:
live metrics (with the business cost per 1,000 decisions) against its gate-time metrics, as an
interval; the version a rollback would return to, scored on the same rows
(:mod:`.same_rows`); a shadow version side by side, and Evidently's classification report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.config.project import Project
from modelops.config.settings import Settings
from modelops.core import monitoring as policy_core
from modelops.core import tags
from modelops.core.errors import ModelopsError
from modelops.core.live_judgement import LiveDrop, judge_drop
from modelops.core.metrics import CostModel, classification_metrics
from modelops.integrations import evidently as evidently_io
from modelops.integrations import mlflow as mlflow_io
from modelops.integrations.database import Ledger
from modelops.services.monitor import labels as labels_io
from modelops.services.monitor import same_rows
from modelops.services.monitor.common import REPORT_SAMPLE_ROWS, SCORE, _days, _sample
from modelops.services.monitor.decide import policy_of
from modelops.services.monitor.lineage import Lineage

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Measured:
    """The performance findings of one run and the report that shows them."""

    performance: policy_core.Performance | None = None
    shadow: policy_core.Shadow | None = None
    report_html: Path | None = None


def labelled_predictions(
    settings: Settings,
    project: Project,
    scored: pd.DataFrame,
    as_of: datetime,
    notes: list[str],
) -> pd.DataFrame:
    """The look-back's predictions old enough to be judged (label maturity) within the
    performance window, with their labels; a note says which were judged and why."""
    import pandas as pd

    monitoring = project.spec.monitoring
    if not len(scored):
        return pd.DataFrame()
    # looked up on the module at call time: tests and the benchmark replace the label source
    known = labels_io.read_known_labels(settings, project, as_of)
    maturity, maturity_source = labels_io.label_maturity(project, known)
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
    return labels_io.join_labels(recent, known, project, monitoring.label_join_tolerance_seconds)


def measure_performance(
    settings: Settings,
    client: Any,
    ledger: Ledger,
    project: Project,
    environment: str,
    lineage: Lineage,
    labelled: pd.DataFrame,
    tenure: policy_core.Tenure,
    run_dir: Path,
) -> Measured:
    """Live metrics of ``lineage.version`` on ``labelled`` against its gate-time metrics (an
    interval); on probation, when that shows a drop, the version a rollback would return to
    scored on the same rows; the shadow, and the report."""
    spec, holder = project.spec, lineage.version
    costs = CostModel(spec.costs.false_negative, spec.costs.false_positive)
    live, rows, positives = _version_metrics(labelled, holder, lineage.threshold, costs)
    if not rows:
        return Measured()
    gate, source = gate_metrics(ledger, spec.name, environment, holder, lineage.tags)
    policy = policy_of(project)
    probation = policy_core.in_probation(tenure, policy)
    served = _served(labelled, holder)
    drop = _judge_drop(served, gate, lineage.threshold, costs, policy, probation)
    previous = None
    target = tenure.rollback_target
    if probation and drop is not None and drop.worse and target is not None:
        previous = same_rows.compare_previous(
            settings, client, project, environment, served, holder, target
        )
    performance = policy_core.Performance(
        version=holder,
        rows=rows,
        positives=positives,
        metrics=live or {},
        gate=gate,
        gate_source=source,
        drop=drop,
        previous=previous,
    )
    shadow, html = _shadow_and_report(
        client, project, labelled, holder, lineage.threshold, costs, live, run_dir
    )
    return Measured(performance, shadow, html)


def _served(labelled: pd.DataFrame, version: str) -> pd.DataFrame:
    if labelled.empty:
        return labelled
    return labelled[(labelled["model_version"] == version) & labelled["score"].notna()]


def _judge_drop(
    served: pd.DataFrame,
    gate: dict[str, float] | None,
    threshold: float,
    costs: CostModel,
    policy: policy_core.Policy,
    probation: bool,
) -> LiveDrop | None:
    """The live primary metric against its gate-time value: on probation against
    ``max_drop_in_probation``, after it against ``max_decay``; None without a gate-time value
    or enough labels to start."""
    metric = policy.primary_metric
    if not gate or metric not in gate or served.empty:
        return None
    if not policy_core.enough_labels(len(served), int(served["label"].sum()), policy):
        return None
    return judge_drop(
        metric,
        served["label"].to_numpy(),
        served["score"].to_numpy(dtype="float64"),
        gate[metric],
        max_drop=policy.max_drop_in_probation if probation else policy.max_decay,
        threshold=threshold,
        costs=costs,
        min_positives=policy.min_positives,
    )


def _version_metrics(
    labelled: pd.DataFrame, version: str | None, threshold: float, costs: CostModel
) -> tuple[dict[str, float] | None, int, int]:
    if version is None or labelled.empty:
        return None, 0, 0
    rows = _served(labelled, version)
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


def _threshold(client: Any, model_name: str, version: str) -> float | None:
    try:
        value = mlflow_io.get_version(client, model_name, version).tags.get(tags.THRESHOLD)
    except ModelopsError:
        return None
    return float(value) if value is not None else None


def _shadow_and_report(
    client: Any,
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
        shadow_threshold = _threshold(client, project.spec.registered_model, version)
        if shadow_threshold is not None and len(both):
            shadow = _compare_shadow(
                project, both, version, threshold, shadow_threshold, costs, live
            )
            frame = both.assign(shadow_model_score=both["shadow_score"].astype("float64"))
            classifications.append(
                evidently_io.Classification(
                    f"shadow v{version}", "shadow_model_score", shadow_threshold
                )
            )
    return shadow, _performance_report(frame, classifications, run_dir)


def _compare_shadow(
    project: Project,
    both: pd.DataFrame,
    version: str,
    threshold: float,
    shadow_threshold: float,
    costs: CostModel,
    live: dict[str, float] | None,
) -> policy_core.Shadow:
    """The shadow against the served version on the labelled requests both scored."""
    spec = project.spec
    y = both["label"].to_numpy()
    served_scores = both[SCORE].to_numpy(dtype="float64")
    shadow_scores = both["shadow_score"].to_numpy(dtype="float64")
    positives = int(y.sum())
    m = spec.monitoring
    if not policy_core.enough_labels(len(y), positives, policy_of(project)):
        return policy_core.Shadow(
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
    return policy_core.compare_shadow(
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
        shadow_metrics=classification_metrics(y, shadow_scores, shadow_threshold, costs),
    )


def _performance_report(
    frame: pd.DataFrame, classifications: list[evidently_io.Classification], run_dir: Path
) -> Path | None:
    """Evidently's classification report of a uniform sample of ``frame``; None when its
    labels hold one class only."""
    labels = frame["label"]
    if frame.empty or labels.nunique() < 2:
        return None
    sample = _sample(frame.assign(label=labels.astype("int64")), REPORT_SAMPLE_ROWS, 0)
    result = evidently_io.performance_report(
        sample,
        label="label",
        classifications=classifications,
        html=run_dir / "performance.html",
        json_path=run_dir / "performance.json",
    )
    return result.saved.html if result.saved else None
