"""Per-segment bootstraps, Holm-corrected: which segments of the holdout got worse.

Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelops.core.metrics import CostModel
from modelops.core.stats.decide import (
    DecisionKind,
    bound_for,
    describe,
    fmt_gain,
    holm,
    holm_adjusted,
    tail_pvalue,
)
from modelops.core.stats.interval import (
    DEFAULT_MAX_ROWS,
    Interval,
    PairedBootstrap,
    paired_bootstrap,
)

SEGMENT_RESAMPLES = 1_000
"""Resamples per segment (2,000 for the overall interval): each segment runs its own BCa, about
0.07 s on 5,000 rows and 0.12 s on 10,000 (the subsample cap) on pr_auc, plus the gain on all of
the segment's rows."""


@dataclass(frozen=True)
class SegmentResult:
    """One compared segment: its interval, its degradation p-value raw and Holm-adjusted."""

    interval: Interval
    pvalue: float
    adjusted_pvalue: float
    degraded: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "interval": self.interval.to_dict(),
            "pvalue": self.pvalue,
            "adjusted_pvalue": self.adjusted_pvalue,
            "degraded": self.degraded,
        }


@dataclass(frozen=True)
class SegmentReport:
    """Which segments got worse, after Holm correction across the compared ones.

    ``compared``: segment -> result; ``skipped``: segment -> why it was not compared;
    ``failed``: segment -> sentence with the numbers (degraded, or not bootstrappable).
    ``passed`` is False when a segment failed *or* none could be compared.
    """

    metric: str
    decision: str
    margin: float
    bound: float
    alpha: float
    resamples: int
    compared: dict[str, SegmentResult]
    skipped: dict[str, str]
    failed: dict[str, str]

    @property
    def passed(self) -> bool:
        return bool(self.compared) and not self.failed

    @property
    def detail(self) -> str:
        if not self.compared:
            why = "; ".join(f"{k}: {v}" for k, v in self.skipped.items()) or "no segments"
            return f"no segment could be compared ({why})"
        tested = (
            f"{len(self.compared)} segments compared on {self.metric} gain, "
            f"Holm-corrected at {self.alpha:g} ({self.resamples:,} paired resamples each)"
        )
        skipped = f", {len(self.skipped)} skipped" if self.skipped else ""
        if self.failed:
            return f"{tested}{skipped}: " + "; ".join(self.failed.values())
        return f"{tested}{skipped}: none shown worse than {fmt_gain(self.bound)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "decision": self.decision,
            "margin": self.margin,
            "bound": self.bound,
            "alpha": self.alpha,
            "resamples": self.resamples,
            "passed": self.passed,
            "detail": self.detail,
            "compared": {k: v.to_dict() for k, v in self.compared.items()},
            "skipped": dict(self.skipped),
            "failed": dict(self.failed),
        }


def segment_decisions(
    segments: Mapping[str, tuple[Any, Any, Any]],
    metric: str,
    decision: DecisionKind,
    margin: float,
    *,
    alpha: float = 0.05,
    min_positives: int = 30,
    min_rows: int = 100,
    resamples: int = SEGMENT_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
    max_rows: int = DEFAULT_MAX_ROWS,
    threshold_c: float | None = None,
    threshold_r: float | None = None,
    costs: CostModel | None = None,
) -> SegmentReport:
    """Bootstrap each segment's gain and flag, Holm-corrected, the segments shown worse.

    ``segments`` maps a key (e.g. "region=north") to ``(labels, candidate scores, reference
    scores)`` of that segment's holdout rows. A segment is skipped, with its reason, when it
    has fewer than ``min_rows`` rows, or fewer than ``min_positives`` rows of either class
    (ranking metrics need both, and are noise below that).

    Every other segment gets its own :func:`paired_bootstrap` (``resamples`` each, 1,000 by
    default against 2,000 for the overall interval, to keep many segments affordable; at least
    1,000 are required) and a one-sided test of H0 "gain >= bound", where the bound is
    ``-margin`` for ``non_inferiority`` and ``+margin`` for ``superiority``, with the
    :func:`bootstrap_pvalue` (hypothesis ``degradation`` at that bound). The p-values of the
    compared segments are Holm-corrected (:func:`holm`) at ``alpha``. A segment FAILS when its
    H0 is rejected: at family-wise error ``alpha``, the evidence says its gain is below the
    bound (for ``non_inferiority``: it lost more than ``margin``). A segment with too little
    evidence either way does not fail. A segment whose bootstrap gave no interval fails too
    (fail closed). When no segment could be compared, ``passed`` is False and ``detail``
    says so.
    """
    if resamples < 1000:
        raise ValueError(f"segments need at least 1,000 resamples, got {resamples}")
    if decision not in ("non_inferiority", "superiority"):
        raise ValueError(f"decision must be non_inferiority or superiority, got {decision!r}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    bound = bound_for(decision, margin)
    skipped: dict[str, str] = {}
    runs: dict[str, PairedBootstrap] = {}
    for key, (labels, cand, ref) in segments.items():
        y, why = _screened(labels, min_rows, min_positives)
        if why:
            skipped[key] = why
            continue
        runs[key] = paired_bootstrap(
            metric,
            y,
            cand,
            ref,
            level=level,
            resamples=resamples,
            seed=seed,
            max_rows=max_rows,
            threshold_c=threshold_c,
            threshold_r=threshold_r,
            costs=costs,
        )
    compared, failed = _holm_compared(runs, bound, alpha)
    return SegmentReport(
        metric, decision, margin, bound, alpha, resamples, compared, skipped, failed
    )


def _screened(labels: Any, min_rows: int, min_positives: int) -> tuple[Any, str]:
    """A segment's labels as integers, and why it is too small to compare ("" when it is not)."""
    import numpy as np

    y = np.asarray(labels, dtype=np.int64)
    positives = int(np.count_nonzero(y == 1))
    negatives = len(y) - positives
    if len(y) < min_rows:
        return y, f"{len(y):,} rows, fewer than {min_rows:,}"
    if min(positives, negatives) < min_positives:
        return y, (
            f"{positives:,} positive and {negatives:,} negative rows, fewer than "
            f"{min_positives:,} of one class"
        )
    return y, ""


def _holm_compared(
    runs: Mapping[str, PairedBootstrap], bound: float, alpha: float
) -> tuple[dict[str, SegmentResult], dict[str, str]]:
    """Each segment's degradation p-value against ``bound``, Holm-corrected at ``alpha``:
    the compared results, and a sentence for each segment that failed."""
    pvalues = {key: tail_pvalue(run.gains, bound, null_above=True) for key, run in runs.items()}
    testable = {k: p for k, p in pvalues.items() if not math.isnan(p)}
    rejected = holm(testable, alpha) if testable else {}
    adjusted = holm_adjusted(testable)
    compared: dict[str, SegmentResult] = {}
    failed: dict[str, str] = {}
    for key, run in runs.items():
        p = pvalues[key]
        degraded = rejected.get(key, False)
        compared[key] = SegmentResult(run.interval, p, adjusted.get(key, math.nan), degraded)
        if math.isnan(p):
            failed[key] = (
                f"{key}: {describe(run.interval)}, not bootstrappable: {run.interval.reason}"
            )
        elif degraded:
            failed[key] = (
                f"{key}: {describe(run.interval)}, worse than {fmt_gain(bound)} (one-sided "
                f"p={p:.2g}, Holm-adjusted {adjusted[key]:.2g} <= {alpha:g})"
            )
    return compared, failed
