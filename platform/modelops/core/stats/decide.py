"""Decisions on bootstrap intervals: margins, one-sided p-values, Holm across hypotheses.

* :func:`decide` - non-inferiority or superiority against a margin, in one sentence.
* :func:`bootstrap_pvalue` and :func:`holm` - one-sided p-values from the bootstrap
  distribution and the Holm-Bonferroni step-down across segments.

Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from modelops.core.stats.interval import Interval

DecisionKind = Literal["non_inferiority", "superiority"]
Hypothesis = Literal["non_inferiority", "superiority", "degradation"]


@dataclass(frozen=True)
class Decision:
    passed: bool
    detail: str


def fmt_gain(value: float) -> str:
    """A gain or bound as the decisions word it: signed, four significant digits."""
    return f"{value:+.4g}"


def _level(level: float) -> str:
    return f"{level * 100:g}%"


def bound_for(hypothesis: Hypothesis, margin: float) -> float:
    """The gain a hypothesis is tested against: ``+margin`` for superiority, else ``-margin``."""
    return margin if hypothesis == "superiority" else -margin


def tail_pvalue(gains: Any, bound: float, *, null_above: bool) -> float:
    """``(1 + #gains on the H0 side of bound, bound included) / (1 + #gains)``; NaN if none.

    H0 is "gain >= bound" when ``null_above``, else "gain <= bound".
    """
    import numpy as np

    values = np.asarray(gains, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return math.nan
    null_side = np.count_nonzero(values >= bound if null_above else values <= bound)
    return (1 + int(null_side)) / (1 + len(values))


def bootstrap_pvalue(gains: Any, hypothesis: Hypothesis, margin: float) -> float:
    """One-sided bootstrap p-value from the resampled gains of :func:`paired_bootstrap`.

    * ``non_inferiority``: H0 "gain <= -margin"; a small p shows the candidate non-inferior.
    * ``superiority``: H0 "gain <= margin"; a small p shows it better by more than the margin.
    * ``degradation``: H0 "gain >= -margin"; a small p shows it worse by more than the margin.

    ``p = (1 + #resamples on the H0 side of the bound, bound included) / (1 + #resamples)``:
    the percentile-bootstrap test, never 0, and at most ``alpha`` exactly when the
    ``alpha`` percentile of the gains clears the bound (so it agrees with the percentile
    interval; BCa's bias and skew correction can move its bounds slightly). NaN without gains.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if hypothesis not in ("non_inferiority", "superiority", "degradation"):
        raise ValueError(f"unknown hypothesis {hypothesis!r}")
    return tail_pvalue(gains, bound_for(hypothesis, margin), null_above=hypothesis == "degradation")


def describe(interval: Interval) -> str:
    """The gain in words, with its interval, resamples and rows when it has bounds."""
    rows = f"{interval.rows_used:,} rows"
    if interval.subsampled:
        rows += f" (stratified subsample of {interval.rows_total:,})"
    gain = fmt_gain(interval.estimate) if math.isfinite(interval.estimate) else "undefined"
    head = f"{interval.metric} gain {gain}"
    if not interval.finite:
        return head
    fallback = f"; {interval.reason}" if interval.reason else ""
    return (
        f"{head} ({_level(interval.level)} {interval.method} interval {fmt_gain(interval.low)} to "
        f"{fmt_gain(interval.high)}, {interval.resamples:,} paired resamples on {rows}{fallback})"
    )


def decide(interval: Interval, decision: DecisionKind, margin: float) -> Decision:
    """Whether the interval clears the margin, in one sentence with the numbers.

    ``non_inferiority`` passes when ``low > -margin`` (the candidate loses less than the
    margin), ``superiority`` when ``low > margin`` (it gains more than the margin). An
    interval without finite bounds fails with its reason.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if decision not in ("non_inferiority", "superiority"):
        raise ValueError(f"decision must be non_inferiority or superiority, got {decision!r}")
    head = describe(interval)
    if not interval.finite:
        reason = interval.reason or "no finite interval"
        return Decision(False, f"{head}, but its uncertainty could not be bounded: {reason}")
    bound = bound_for(decision, margin)
    passed = interval.low > bound
    if decision == "non_inferiority":
        verdict = (
            f"non-inferior within margin {margin:g}"
            if passed
            else f"not shown non-inferior: lower bound {fmt_gain(interval.low)} is not above "
            f"{fmt_gain(bound)}"
        )
    else:
        verdict = (
            f"superior by more than margin {margin:g}"
            if passed
            else f"not shown superior: lower bound {fmt_gain(interval.low)} is not above "
            f"{fmt_gain(bound)}"
        )
    return Decision(passed, f"{head}: {verdict}")


def _ascending(pvalues: Mapping[str, float]) -> list[tuple[str, float]]:
    """(key, p) by ascending p, NaN last, ties in key order."""
    return sorted(
        pvalues.items(),
        key=lambda kv: (math.isnan(kv[1]), 0.0 if math.isnan(kv[1]) else kv[1], kv[0]),
    )


def holm(pvalues: Mapping[str, float], alpha: float) -> dict[str, bool]:
    """Holm-Bonferroni step-down: which hypotheses to reject, family-wise error <= ``alpha``.

    Sorting the m p-values ascending, the k-th smallest (k from 1) is rejected while every
    one up to it satisfies ``p <= alpha / (m - k + 1)``; from the first that does not, none
    is. Ties are taken in key order, so the outcome is deterministic. A NaN p-value is
    never rejected and still counts in m.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    m = len(pvalues)
    rejected = dict.fromkeys(pvalues, False)
    for k, (key, p) in enumerate(_ascending(pvalues)):
        if not p <= alpha / (m - k):
            break
        rejected[key] = True
    return rejected


def holm_adjusted(pvalues: Mapping[str, float]) -> dict[str, float]:
    """Holm-adjusted p-values: a hypothesis is rejected at ``alpha`` iff its value <= alpha."""
    m = len(pvalues)
    adjusted: dict[str, float] = {}
    running = 0.0
    for k, (key, p) in enumerate(_ascending(pvalues)):
        running = max(running, (m - k) * p)  # NaN sorts last and stays NaN
        adjusted[key] = min(1.0, running) if not math.isnan(p) else math.nan
    return adjusted
