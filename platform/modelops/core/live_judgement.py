"""How sure the monitor is that a serving version got worse, and that the version before it
would do better: the evidence behind a rollback, from intervals, never from point values.

Two questions, each answered on the serving version's matured, labelled predictions:

1. :func:`judge_drop` - is the live primary metric below the value the gate measured? The
   bootstrap interval of ``live - gate`` (:func:`~modelops.core.stats.metric_interval`, BCa,
   oriented so that negative is worse) must lie below zero (*significant*) and its estimate
   must be more than ``max_drop`` below (*material*). The rows are enough to judge only when the
   interval's half-width is at most ``max_drop``: an interval of +-0.08 cannot tell a drop of
   0.05 from none. The labelled positives that would narrow it enough follow from the width
   (half-widths shrink as 1/sqrt(positives) for ranking metrics on rare positives), so the
   minimum is derived from the data, not a fixed count.
2. :func:`compare_on_same_rows` - would the previous version have done better on *the same*
   rows? Both versions are scored from the logged features and the paired bootstrap of
   ``previous - current`` (the gate's :func:`~modelops.core.stats.paired_interval`) must lie
   above zero. A previous version with the same artifact is the same model: never better.

:func:`judge_drop_merged` answers the first question from statistics merged on Spark
(:mod:`modelops.core.stats.mergeable`), by the same rule.

Pure functions, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from modelops.core.metrics import CostModel, classification_metrics
from modelops.core.stats.decide import DecisionKind, decide, describe
from modelops.core.stats.interval import Interval, metric_interval, paired_interval
from modelops.core.stats.mergeable import Slice, poisson_metric_interval

LEVEL = 0.95
"""Confidence level of both intervals (two-sided; each rule reads one side)."""
RESAMPLES = 2000


@dataclass(frozen=True)
class LiveDrop:
    """The live primary metric against its gate-time value, with its interval.

    ``interval`` bounds ``live - gate`` (negated for lower-is-better metrics, so negative is
    worse); ``drop`` is ``-estimate`` (positive: worse). ``judged``: the interval's half-width
    is at most ``max_drop``; otherwise ``positives_needed`` estimates how many labelled
    positives would make it so."""

    metric: str
    live: float
    gate: float
    rows: int
    positives: int
    interval: dict[str, Any]
    half_width: float
    max_drop: float
    judged: bool
    significant: bool
    material: bool
    positives_needed: int | None
    detail: str

    @property
    def drop(self) -> float:
        estimate = float(self.interval.get("estimate", math.nan))
        return -estimate if math.isfinite(estimate) else math.nan

    @property
    def worse(self) -> bool:
        """Judged, significantly and materially below the gate-time value."""
        return self.judged and self.significant and self.material

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drop": self.drop, "worse": self.worse}


@dataclass(frozen=True)
class SameRows:
    """The previous version against the serving one on the same labelled rows.

    ``interval`` bounds ``previous - current`` on the primary metric (positive: the previous
    version is better); ``better``: its lower bound is above zero. ``evaluated`` is False when
    the comparison could not be made (``detail`` says why): a rollback is then not decided."""

    previous_version: str
    current_version: str
    evaluated: bool
    identical: bool
    better: bool
    rows: int = 0
    positives: int = 0
    previous_metrics: dict[str, float] | None = None
    current_metrics: dict[str, float] | None = None
    interval: dict[str, Any] | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge_drop(
    metric: str,
    labels: Any,
    scores: Any,
    gate_value: float,
    *,
    max_drop: float,
    threshold: float,
    costs: CostModel,
    min_positives: int = 1,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> LiveDrop:
    """Judge the live metric on ``labels``/``scores`` against ``gate_value`` (see the module)."""
    import numpy as np

    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    positives = int(y.sum())
    both = min(positives, len(y) - positives)
    live = math.nan
    if both > 0:
        live = float(classification_metrics(y, s, threshold, costs).get(metric, math.nan))
    if both < max(min_positives, 1):
        interval = _no_interval(metric, len(y), f"{both} labelled predictions of the rarer class")
    else:
        interval = metric_interval(
            metric,
            y,
            s,
            gate_value,
            level=LEVEL,
            resamples=resamples,
            seed=seed,
            threshold=threshold,
            costs=costs,
        )
    return from_interval(metric, live, gate_value, len(y), positives, interval, max_drop)


def from_interval(
    metric: str,
    live: float,
    gate: float,
    rows: int,
    positives: int,
    interval: Interval,
    max_drop: float,
) -> LiveDrop:
    half = (interval.high - interval.low) / 2 if interval.finite else math.inf
    judged = interval.finite and half <= max_drop
    needed = None
    if not judged and math.isfinite(half) and positives > 0:
        needed = math.ceil(positives * (half / max(max_drop, 1e-12)) ** 2)
    significant = interval.finite and interval.high < 0
    drop = -interval.estimate if math.isfinite(interval.estimate) else math.nan
    material = math.isfinite(drop) and drop > max_drop
    said = describe(interval).replace(" gain ", " live minus gate-time ", 1)
    if not judged:
        why = interval.reason or f"half-width {half:.3g} > max_drop {max_drop:g}"
        more = f"; about {needed:,} labelled positives would narrow it enough" if needed else ""
        detail = f"not judged: {said}: {why}{more}"
    elif significant and material:
        detail = f"{said}: below its gate-time value, by more than {max_drop:g}"
    elif significant:
        detail = f"{said}: below its gate-time value, by no more than {max_drop:g}"
    else:
        detail = f"{said}: not shown below its gate-time value"
    return LiveDrop(
        metric=metric,
        live=live,
        gate=gate,
        rows=rows,
        positives=positives,
        interval=interval.to_dict(),
        half_width=half,
        max_drop=max_drop,
        judged=judged,
        significant=significant,
        material=material,
        positives_needed=needed,
        detail=detail,
    )


def _no_interval(metric: str, rows: int, why: str) -> Interval:
    nan = math.nan
    return Interval(metric, nan, nan, nan, LEVEL, "BCa", 0, rows, rows, False, why)


def compare_on_same_rows(
    metric: str,
    labels: Any,
    current_scores: Any,
    previous_scores: Any,
    *,
    current: tuple[str, float],
    previous: tuple[str, float],
    costs: CostModel,
    identical: bool = False,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> SameRows:
    """Is ``previous`` (version, threshold) better than ``current`` on these rows? ``identical``:
    the two have the same artifact, so the previous one is never better."""
    import numpy as np

    y = np.asarray(labels, dtype=np.int64)
    c = np.asarray(current_scores, dtype=np.float64)
    p = np.asarray(previous_scores, dtype=np.float64)
    (cur_v, cur_t), (prev_v, prev_t) = current, previous
    positives = int(y.sum())
    if identical:
        return SameRows(
            prev_v,
            cur_v,
            rows=len(y),
            evaluated=True,
            identical=True,
            better=False,
            positives=positives,
            detail=f"v{prev_v} has the same artifact as v{cur_v}: the same model, never better",
        )
    if positives == 0 or positives == len(y):
        return SameRows(
            prev_v,
            cur_v,
            rows=len(y),
            evaluated=False,
            identical=False,
            better=False,
            positives=positives,
            detail=f"v{prev_v} not compared: the rows hold one class only",
        )
    interval = paired_interval(
        metric,
        y,
        p,
        c,
        level=LEVEL,
        resamples=resamples,
        seed=seed,
        threshold_c=prev_t,
        threshold_r=cur_t,
        costs=costs,
    )
    rule = decide(interval, "superiority", 0.0)
    said = rule.detail.replace(f"{metric} gain", f"{metric} gain of v{prev_v} over v{cur_v}", 1)
    return SameRows(
        prev_v,
        cur_v,
        rows=len(y),
        evaluated=interval.finite,
        identical=False,
        better=rule.passed,
        positives=positives,
        previous_metrics=classification_metrics(y, p, prev_t, costs),
        current_metrics=classification_metrics(y, c, cur_t, costs),
        interval=interval.to_dict(),
        detail=f"on the same {len(y):,} labelled predictions: {said}",
    )


def not_compared(previous: str, current: str, why: str) -> SameRows:
    """A comparison that could not be made (the previous version could not be scored)."""
    return SameRows(previous, current, evaluated=False, identical=False, better=False, detail=why)


@dataclass(frozen=True)
class Shadow:
    """A shadow version against the served one on the same labelled requests."""

    version: str
    rows: int
    positives: int
    served_metrics: dict[str, float]
    shadow_metrics: dict[str, float]
    interval: dict[str, Any]
    gate_rule: str
    beats: bool
    detail: str


def compare_shadow(
    version: str,
    labels: Any,
    served_scores: Any,
    shadow_scores: Any,
    *,
    metric: str,
    decision: DecisionKind,
    margin: float,
    served_threshold: float,
    shadow_threshold: float,
    costs: CostModel,
    served_metrics: dict[str, float],
    shadow_metrics: dict[str, float],
    resamples: int = 2000,
) -> Shadow:
    """Does the shadow beat the served version on these rows, by the gate's rule?

    The paired-bootstrap interval of the shadow's gain on ``metric``
    (:func:`~modelops.core.stats.paired_interval`, the gate's BCa interval) must pass the gate's
    own decision (``decision`` with ``margin``) *and* lie above zero: the gate lets a candidate
    through that is merely not worse, but only one shown better is proposed over the one
    serving.
    """
    import numpy as np

    y = np.asarray(labels, dtype=np.int64)
    interval = paired_interval(
        metric,
        y,
        shadow_scores,
        served_scores,
        resamples=resamples,
        threshold_c=shadow_threshold,
        threshold_r=served_threshold,
        costs=costs,
    )
    rule = decide(interval, decision, margin)
    better = decide(interval, "superiority", 0.0)
    beats = rule.passed and better.passed
    detail = rule.detail if not rule.passed else better.detail
    return Shadow(
        version=version,
        rows=len(y),
        positives=int(y.sum()),
        served_metrics=served_metrics,
        shadow_metrics=shadow_metrics,
        interval=interval.to_dict(),
        gate_rule=f"{decision} with margin {margin:g}, and shown better than the served version",
        beats=beats,
        detail=detail,
    )


def judge_drop_merged(
    metric: str,
    labelled: Slice,
    role: str,
    gate_value: float,
    *,
    max_drop: float,
    costs: CostModel,
    min_positives: int = 1,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> LiveDrop:
    """:func:`judge_drop` from merged statistics of the labelled predictions (``labelled``:
    the serving version's scores as ``role``, reduced on Spark): the live metric from the
    histogram, the interval from the Poisson bootstrap of the hash sample, the same rule."""
    hist = labelled.histograms[role]
    rows, positives = hist.rows, int(hist.positives.sum())
    both = min(positives, rows - positives)
    live = float(hist.metrics(costs).get(metric, math.nan)) if both > 0 else math.nan
    if both < max(min_positives, 1):
        interval = _no_interval(metric, rows, f"{both} labelled predictions of the rarer class")
    else:
        interval = poisson_metric_interval(
            metric,
            labelled,
            role,
            gate_value,
            costs=costs,
            level=LEVEL,
            replicates=resamples,
            seed=seed,
        )
    return from_interval(metric, live, gate_value, rows, positives, interval, max_drop)
