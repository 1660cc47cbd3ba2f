"""judge, on merged statistics: the gate's metrics, primary interval and segment decisions from
:class:`~modelops.core.stats.mergeable.HoldoutStats` (what the cluster profile's Spark job
returns, :mod:`modelops.integrations.spark.gate`) instead of the holdout's rows.

The rules are the same (:mod:`modelops.core.gate_rules`, :func:`~modelops.core.stats.decide`);
only the statistics behind them come from aggregates:

- each model's metrics from its 4,096-bin histogram (counts, decision metrics, cost, log loss
  and Brier exact; ROC-AUC, PR-AUC and ECE from the bins);
- the primary interval and each segment's from the Poisson bootstrap of the hash sample
  (:func:`~modelops.core.stats.mergeable.poisson_paired`), sized and rescaled as the
  single-machine bootstrap is, Holm across segments as there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelops.config.project import Project
from modelops.config.settings import Settings
from modelops.core.gate_rules import Evaluation
from modelops.core.metrics import CostModel
from modelops.core.stats import Interval, SegmentReport
from modelops.core.stats.mergeable import HoldoutStats, Slice, poisson_paired, segment_report
from modelops.services.gate.models import GateModel

RESAMPLES = 2000  # as the single-machine primary interval
SEGMENT_SEED = 0


@dataclass(frozen=True)
class MergedStatistics:
    """What the statistics runner measured, from merged statistics (latency, leakage and the
    sibling aside: they need rows, see docs/scale-out.md)."""

    candidate: Evaluation
    reference: Evaluation
    interval: Interval
    segments: SegmentReport | None


def _costs(project: Project) -> CostModel:
    costs = project.spec.decision_costs
    return CostModel(costs.false_negative, costs.false_positive)


def evaluation_of(
    m: GateModel, stats: HoldoutStats, project: Project, costs: CostModel
) -> Evaluation:
    """``m``'s metrics overall and per segment value (segments of at least
    ``min_segment_rows`` rows, as :func:`~modelops.core.metrics.segment_metrics_of_rows`)."""
    import math

    min_rows = project.spec.promotion.min_segment_rows
    segments: dict[str, dict[str, dict[str, float]]] = {c: {} for c in project.spec.segments}
    for key, part in stats.segments.items():
        column, _, value = key.partition("=")
        hist = part.histograms[m.role]
        if column in segments and hist.rows >= min_rows:
            segments[column][value] = hist.metrics(costs)
    return Evaluation(
        role=m.role,
        version=m.version,
        threshold=m.threshold,
        metrics=stats.overall.histograms[m.role].metrics(costs),
        segments=segments,
        latency_ms_p50=math.nan,
        latency_ms_p95=math.nan,
        size_bytes=m.size_bytes,
        features=m.features,
    )


def merged_statistics(
    project: Project, stats: HoldoutStats, candidate: GateModel, reference: GateModel
) -> MergedStatistics:
    """The primary interval, the segment decisions and both evaluations, as
    :func:`~modelops.services.gate.statistics.run_statistics` decides them on rows."""
    spec = project.spec
    p = spec.promotion
    costs = _costs(project)
    roles = (candidate.role, reference.role)
    if not set(roles) <= set(stats.roles):
        raise ValueError(f"statistics of {stats.roles}, not of {roles}")
    overall: Slice = stats.overall
    interval = poisson_paired(
        spec.primary_metric, overall, roles, costs=costs, replicates=RESAMPLES
    ).interval
    segments = (
        segment_report(
            stats,
            spec.primary_metric,
            "non_inferiority",  # a segment may not lose more than max_segment_drop
            p.max_segment_drop,
            costs=costs,
            min_positives=p.min_segment_positives,
            min_rows=p.min_segment_rows,
            seed=SEGMENT_SEED,
            roles=roles,
        )
        if spec.segments
        else None
    )
    return MergedStatistics(
        candidate=evaluation_of(candidate, stats, project, costs),
        reference=evaluation_of(reference, stats, project, costs),
        interval=interval,
        segments=segments,
    )


def spark_statistics(
    settings: Settings,
    project: Project,
    holdout: Any,
    candidate: GateModel,
    reference: GateModel,
) -> MergedStatistics:
    """The cluster profile's statistics: the holdout scored by both models' serving scorers on
    the settings' Spark master and reduced there (:func:`~modelops.integrations.spark.gate.
    reduce_scored`), then :func:`merged_statistics`. ``holdout``: a Spark DataFrame, a parquet
    path or URI, or (while the holdout join still returns pandas) the pandas frame itself,
    handed to Spark. Rows are identified by the entity and the joined rows' event_timestamp."""
    import pandas as pd

    from modelops.integrations.spark.gate import reduce_scored
    from modelops.integrations.spark.session import spark_session

    spark = spark_session(settings)
    if isinstance(holdout, pd.DataFrame):
        frame = spark.createDataFrame(holdout)
    elif isinstance(holdout, str):
        frame = spark.read.parquet(holdout)
    else:
        frame = holdout
    spec = project.spec
    models = (candidate, reference)
    stats = reduce_scored(
        frame,
        {m.role: m.scores for m in models},
        {m.role: m.threshold for m in models},
        label=spec.label.column,
        id_columns=[spec.entity, "event_timestamp"],  # the joined holdout's time column
        segments=spec.segments,
    )
    return merged_statistics(project, stats, candidate, reference)
