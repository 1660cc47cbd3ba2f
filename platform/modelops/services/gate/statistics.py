"""judge, the statistics: paired bootstrap intervals for the primary metric, the segments and the
training sibling, with the metrics and the permutation importance measured meanwhile.

The bootstraps (numpy and scipy, mostly outside the GIL) run on a second thread while the
calling thread computes the metrics, scores the sibling and measures leakage with the models.
Only numpy and scipy run on that thread: scikit-learn's input checks switch process-wide warning
filters on and off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelops.config.project import Project
from modelops.core.gate_rules import Evaluation
from modelops.core.leakage import ImportanceResult, permutation_shares
from modelops.core.metrics import (
    CostModel,
    classification_metrics,
    score_order,
    segment_metrics_of_rows,
    segment_rows,
)
from modelops.core.stats import Interval, SegmentReport, decide, paired_interval, segment_decisions
from modelops.services.gate.merged import MergedStatistics
from modelops.services.gate.models import GateModel

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

LEAKAGE_SAMPLE = 5_000
LEAKAGE_REPEATS = 2  # the drop-column comparison is evidence beside the rule, not the rule itself


@dataclass(frozen=True)
class SiblingPair:
    """Of two versions trained together, the more complex and the simpler one."""

    complex: GateModel
    simple: GateModel
    candidate_is_complex: bool


@dataclass(frozen=True)
class Statistics:
    """What the statistics runner measured on the holdout (latency aside)."""

    candidate: Evaluation
    reference: Evaluation
    interval: Interval
    segments: SegmentReport | None
    sibling: SiblingPair | None
    sibling_interval: Interval | None
    importance: ImportanceResult


def costs_of(project: Project) -> CostModel:
    costs = project.spec.decision_costs
    return CostModel(costs.false_negative, costs.false_positive)


def segment_groups(
    frame: pd.DataFrame,
    columns: Sequence[str],
    label: np.ndarray,
    candidate_scores: np.ndarray,
    reference_scores: np.ndarray,
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``column=value`` -> (labels, candidate scores, reference scores) of that segment's rows,
    segments in order of appearance, rows ascending."""
    import numpy as np
    import pandas as pd

    groups = {}
    for column in columns:
        keys = frame[column].astype("string").fillna("(missing)")
        codes, values = pd.factorize(keys)  # in order of appearance, as keys.unique()
        by_code = np.argsort(codes, kind="stable")  # each segment's rows, ascending
        ends = np.cumsum(np.bincount(codes, minlength=len(values)))
        for code, value in enumerate(values):
            members = by_code[(ends[code - 1] if code else 0) : ends[code]]
            groups[f"{column}={value}"] = (
                label[members],
                candidate_scores[members],
                reference_scores[members],
            )
    return groups


def evaluation(
    m: GateModel,
    scores: np.ndarray,
    order: np.ndarray,
    label: np.ndarray,
    segments: dict[str, list[tuple[Any, np.ndarray]]],
    project: Project,
) -> Evaluation:
    """Metrics overall (from the scores' ``order``, sorted once) and per segment (``segments``:
    :func:`~modelops.core.metrics.segment_rows` of the holdout)."""
    spec = project.spec
    costs = costs_of(project)
    return Evaluation(
        role=m.role,
        version=m.version,
        threshold=m.threshold,
        metrics=classification_metrics(label, scores, m.threshold, costs, order=order),
        segments=segment_metrics_of_rows(
            segments,
            label,
            scores,
            m.threshold,
            costs,
            min_rows=spec.promotion.min_segment_rows,
        ),
        latency_ms_p50=math.nan,
        latency_ms_p95=math.nan,
        size_bytes=m.size_bytes,
        features=m.features,
    )


def run_statistics(
    project: Project,
    frame: pd.DataFrame,
    label: np.ndarray,
    scores: dict[str, np.ndarray],
    candidate: GateModel,
    reference: GateModel,
    sibling: GateModel | None,
    merged: MergedStatistics | None = None,
) -> Statistics:
    """Intervals, segment decisions, metrics and importance; returns once every thread is done,
    so that latency can be timed with nothing else running. ``merged``: the metrics, primary
    interval and segment decisions already computed from statistics merged on Spark (the
    cluster profile, :mod:`.merged`), used instead of this process's own."""
    if merged is not None:
        return _with_merged(project, frame, label, scores, candidate, sibling, merged)
    spec = project.spec
    p = spec.promotion
    primary = spec.primary_metric
    costs = costs_of(project)
    c_scores, r_scores = scores["candidate"], scores[reference.role]
    groups = segment_groups(frame, spec.segments, label, c_scores, r_scores)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gate-statistics") as pool:
        segments_run = (
            pool.submit(
                segment_decisions,
                groups,
                primary,
                "non_inferiority",  # a segment may not lose more than max_segment_drop
                p.max_segment_drop,
                min_positives=p.min_segment_positives,
                min_rows=p.min_segment_rows,
                threshold_c=candidate.threshold,
                threshold_r=reference.threshold,
                costs=costs,
            )
            if spec.segments
            else None
        )
        orders = {role: score_order(s) for role, s in scores.items()}  # one sort per model
        primary_run = pool.submit(
            paired_interval,
            primary,
            label,
            c_scores,
            r_scores,
            threshold_c=candidate.threshold,
            threshold_r=reference.threshold,
            costs=costs,
            orders=(orders["candidate"], orders[reference.role]),
        )
        by_segment = segment_rows(frame, spec.segments)
        c_eval = evaluation(candidate, c_scores, orders["candidate"], label, by_segment, project)
        r_eval = evaluation(reference, r_scores, orders[reference.role], label, by_segment, project)
        pair, sibling_run = (
            _sibling_run(
                pool, project, frame, label, candidate, sibling, (c_scores, orders["candidate"])
            )
            if sibling is not None
            else (None, None)
        )
        x = frame[candidate.features]
        importance = permutation_shares(
            candidate, x, label, sample=LEAKAGE_SAMPLE, repeats=LEAKAGE_REPEATS
        )
        return Statistics(
            candidate=c_eval,
            reference=r_eval,
            interval=primary_run.result(),
            segments=segments_run.result() if segments_run is not None else None,
            sibling=pair,
            sibling_interval=sibling_run.result() if sibling_run is not None else None,
            importance=importance,
        )


def _with_merged(
    project: Project,
    frame: pd.DataFrame,
    label: np.ndarray,
    scores: dict[str, np.ndarray],
    candidate: GateModel,
    sibling: GateModel | None,
    merged: MergedStatistics,
) -> Statistics:
    """The statistics of the merged path, with the sibling and importance measured here."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gate-statistics") as pool:
        c_scores = scores["candidate"]
        pair, sibling_run = (
            _sibling_run(
                pool, project, frame, label, candidate, sibling, (c_scores, score_order(c_scores))
            )
            if sibling is not None
            else (None, None)
        )
        importance = permutation_shares(
            candidate,
            frame[candidate.features],
            label,
            sample=LEAKAGE_SAMPLE,
            repeats=LEAKAGE_REPEATS,
        )
        return Statistics(
            candidate=merged.candidate,
            reference=merged.reference,
            interval=merged.interval,
            segments=merged.segments,
            sibling=pair,
            sibling_interval=sibling_run.result() if sibling_run is not None else None,
            importance=importance,
        )


def _sibling_run(
    pool: ThreadPoolExecutor,
    project: Project,
    frame: pd.DataFrame,
    label: np.ndarray,
    candidate: GateModel,
    sibling: GateModel,
    candidate_scored: tuple[np.ndarray, np.ndarray],
) -> tuple[SiblingPair, Future[Interval]]:
    """Of two versions trained together, the simpler baseline is preferred unless the candidate
    is shown better: exactly one of them can pass, and noise favours neither.
    ``candidate_scored``: the candidate's scores and their order."""
    sibling_scores = sibling.scores(frame)
    is_candidate = candidate.trained_role != "baseline"
    complex_, simple = (candidate, sibling) if is_candidate else (sibling, candidate)
    by_role = {
        candidate.version: candidate_scored,
        sibling.version: (sibling_scores, score_order(sibling_scores)),
    }
    run = pool.submit(
        paired_interval,
        project.spec.primary_metric,
        label,
        by_role[complex_.version][0],
        by_role[simple.version][0],
        threshold_c=complex_.threshold,
        threshold_r=simple.threshold,
        costs=costs_of(project),
        orders=(by_role[complex_.version][1], by_role[simple.version][1]),
    )
    return SiblingPair(complex_, simple, is_candidate), run


def sibling_finding(stats: Statistics) -> tuple[bool, str] | None:
    """The sibling rule's input: the candidate must be shown better than its baseline, and a
    baseline passes only while its candidate is not."""
    pair, interval = stats.sibling, stats.sibling_interval
    if pair is None or interval is None:
        return None
    shown = decide(interval, "superiority", 0.0)
    said = f"candidate v{pair.complex.version} vs baseline v{pair.simple.version}: {shown.detail}"
    if not interval.finite:
        return (False, said)
    if pair.candidate_is_complex:
        return (shown.passed, f"{said}; a candidate must be shown better")
    return (
        not shown.passed,
        f"{said}; the baseline is preferred unless its candidate is shown better",
    )
