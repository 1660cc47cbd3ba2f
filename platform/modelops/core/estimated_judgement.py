"""What the monitor makes of estimated performance: the rules that act before the labels arrive
and the check that says when the estimate no longer holds. Pure functions, no I/O.

The estimate itself (:mod:`modelops.core.estimation`, CBPE) is "expected performance if P(y|x)
is unchanged": the serving version's scores, calibrated on its holdout rows, give the expected
confusion matrix of every chunk of logged predictions at the version's threshold, the expected
cost per 1,000 decisions with the project's costs, and a sampling band.

Three questions:

1. :func:`judge_window` - is the look-back window's estimated cost per 1,000 worse than the
   cost the gate measured? *Judged* when the window holds at least ``min_rows`` predictions and
   a gate-time cost exists; *worse* when the band's low end is above the gate-time cost (the
   band excludes it, on the bad side).
2. :func:`compare_estimates` - would the version a rollback returns to do better on *the same*
   logged rows? Its own holdout-calibrated estimate on the serving version's logged features
   must be better: the paired interval of ``current - previous`` expected cost per 1,000
   (:func:`paired_cost_gain`: rows both versions decide alike carry no variance; each
   calibration's own standard error is added) must lie above 0. A previous version with the
   same model artifact is the same model: never better.
3. :func:`check_estimate` - once labels mature, does the estimate still hold? On the same
   matured predictions (the cohorts), realised cost per 1,000 minus estimated cost per 1,000
   (the gap) with the interval ``gap +- z * se``, where ``se`` combines (a) the Poisson-binomial
   standard error of the realised cost if the calibrated probabilities were true (per row:
   ``q (1 - q) c^2`` with ``c`` the cost of the row's possible error, ``c_fp`` when flagged,
   ``c_fn`` when not) and (b) the same standard error computed on the holdout rows the
   calibration was fitted on (the calibration's own sampling error: it was learned from those
   labels, so its average cost is known only that well). The interval excluding 0 is a
   *significant* gap: P(y|x) changed (concept drift). The monitor retrains when the realised
   cost is above the estimate; below it, the run notes it and does nothing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from modelops.core.metrics import CostModel

if TYPE_CHECKING:
    import numpy as np

    from modelops.core.estimation.cbpe import ChunkEstimate


@dataclass(frozen=True)
class PreviousEstimate:
    """The version a rollback would return to against the serving one, each estimated (with
    its own holdout calibration and threshold) on the serving version's logged predictions.
    ``evaluated`` False: the comparison could not be made (``detail`` says why)."""

    previous_version: str
    current_version: str
    evaluated: bool
    identical: bool = False
    better: bool = False
    rows: int = 0
    current_cost_per_1000: float | None = None
    current_low: float | None = None
    previous_cost_per_1000: float | None = None
    previous_high: float | None = None
    detail: str = ""
    interval: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Estimated:
    """The serving version's estimated performance over the look-back window: per chunk and
    for the whole window, against its gate-time cost; ``previous``: the version a rollback
    would return to on the same logged rows (only looked at when ``worse`` on probation)."""

    version: str
    calibration: dict[str, Any]
    threshold: float
    gate_cost_per_1000: float | None
    gate_roc_auc: float | None
    chunks: tuple[ChunkEstimate, ...]
    window: ChunkEstimate
    worse: bool
    judged: bool
    detail: str
    previous: PreviousEstimate | None = None


@dataclass(frozen=True)
class EstimateCheck:
    """Realised against estimated cost per 1,000 on the same matured predictions."""

    cohorts: int
    rows: int
    positives: int
    estimated_cost_per_1000: float
    realised_cost_per_1000: float
    gap: float
    interval: dict[str, Any] = field(default_factory=dict)
    significant: bool = False
    detail: str = ""


def judge_window(
    window: ChunkEstimate, gate_cost_per_1000: float | None, *, min_rows: int
) -> tuple[bool, bool, str]:
    """``(judged, worse, detail)`` of the window's estimate against the gate-time cost."""
    said = (
        f"estimated cost {window.cost_per_1000:,.1f} per 1,000 (band "
        f"{window.cost_per_1000_low:,.1f} .. {window.cost_per_1000_high:,.1f}) on "
        f"{window.rows} logged predictions"
    )
    if gate_cost_per_1000 is None or not math.isfinite(gate_cost_per_1000):
        return False, False, f"{said}; no gate-time cost to compare with"
    if window.rows < min_rows:
        return False, False, f"{said}; fewer than min_rows_per_chunk {min_rows}"
    gate = f"gate-time {gate_cost_per_1000:,.1f}"
    if window.cost_per_1000_low > gate_cost_per_1000:
        return True, True, f"{said}: worse than {gate}, the band excludes it"
    if window.cost_per_1000_high < gate_cost_per_1000:
        return True, False, f"{said}: better than {gate}"
    return True, False, f"{said}: the band holds {gate}"


def compare_estimates(
    previous_version: str,
    current_version: str,
    current: ChunkEstimate,
    previous: ChunkEstimate,
    *,
    identical: bool = False,
    interval: dict[str, Any] | None = None,
) -> PreviousEstimate:
    """Whether ``previous`` (estimated on the same rows as ``current``) is better (cost: lower
    is better): with ``interval`` (:func:`paired_cost_gain`), its low end above 0; without,
    the two bands apart, the previous one below (conservative: they are correlated)."""
    if identical:
        better = False
    elif interval is not None:
        better = float(interval["low"]) > 0
    else:
        better = previous.cost_per_1000_high < current.cost_per_1000_low
    if identical:
        detail = f"v{previous_version} is the same model as v{current_version}"
    else:
        said = (
            f"v{previous_version}'s estimated cost {previous.cost_per_1000:,.1f} per 1,000 "
            f"against v{current_version}'s {current.cost_per_1000:,.1f} on the same "
            f"{current.rows} logged predictions"
        )
        if interval is not None:
            verdict = "better" if better else "not shown better"
            detail = (
                f"{said}: gain {interval['estimate']:+,.1f}, interval {interval['low']:+,.1f} "
                f".. {interval['high']:+,.1f}: {verdict}"
            )
        else:
            relation = "apart and below" if better else "not apart and below"
            detail = (
                f"{said}: band high {previous.cost_per_1000_high:,.1f} {relation} band low "
                f"{current.cost_per_1000_low:,.1f}"
            )
    return PreviousEstimate(
        previous_version=previous_version,
        current_version=current_version,
        evaluated=True,
        identical=identical,
        better=better,
        rows=current.rows,
        current_cost_per_1000=current.cost_per_1000,
        current_low=current.cost_per_1000_low,
        previous_cost_per_1000=previous.cost_per_1000,
        previous_high=previous.cost_per_1000_high,
        detail=detail,
        interval=interval,
    )


def paired_cost_gain(
    current: tuple[Any, Any, float],
    previous: tuple[Any, Any, float],
    costs: CostModel,
    *,
    calibration_se: tuple[float, float] = (0.0, 0.0),
    z: float = 1.96,
) -> dict[str, Any]:
    """The interval of ``current - previous`` expected cost per 1,000 on the same rows
    (positive: the previous version is better).

    ``current`` and ``previous``: each version's ``(scores, q, threshold)`` on the same rows,
    ``q`` its own calibrated probabilities. A row's realised cost difference is linear in its
    label: ``d = a + b y`` with ``b = b_cur - b_prev``, ``b = -c_fp`` for a flagged row and
    ``c_fn`` for an unflagged one, so rows both versions decide alike contribute no variance.
    ``se``: the Poisson-binomial standard error ``sqrt(sum b^2 q(1-q))`` (``q``: the two
    versions' mean probability), per 1,000 rows, combined with each calibration's own standard
    error (:func:`calibration_se`)."""
    import numpy as np

    s_cur, q_cur, t_cur = (np.asarray(v, dtype=np.float64) for v in current)
    s_prev, q_prev, t_prev = (np.asarray(v, dtype=np.float64) for v in previous)
    n = len(s_cur)
    if n == 0 or len(s_prev) != n:
        raise ValueError("the two versions need the same, non-empty rows")
    f_cur, f_prev = s_cur >= t_cur, s_prev >= t_prev
    e_cur, _ = expected_cost_terms(q_cur, f_cur, costs)
    e_prev, _ = expected_cost_terms(q_prev, f_prev, costs)
    slope = np.where(f_cur, -costs.false_positive, costs.false_negative) - np.where(
        f_prev, -costs.false_positive, costs.false_negative
    )
    q = (q_cur + q_prev) / 2
    se_rows = 1000.0 * math.sqrt(float((slope * slope * q * (1 - q)).sum())) / n
    se = math.sqrt(se_rows**2 + calibration_se[0] ** 2 + calibration_se[1] ** 2)
    gain = 1000.0 * (e_cur - e_prev) / n
    return {
        "estimate": gain,
        "low": gain - z * se,
        "high": gain + z * se,
        "z": z,
        "se": se,
        "se_rows": se_rows,
        "se_calibration": list(calibration_se),
        "rows_decided_differently": int((f_cur != f_prev).sum()),
        "statistic": "current - previous expected cost per 1,000 on the same rows",
    }


def previous_not_compared(
    previous_version: str, current_version: str, why: str
) -> PreviousEstimate:
    return PreviousEstimate(previous_version, current_version, False, detail=why)


def expected_cost_terms(
    q: np.ndarray, flagged: np.ndarray, costs: CostModel
) -> tuple[float, float]:
    """The expected total cost of the rows and its Poisson-binomial variance, if each row's
    label is Bernoulli(q): a flagged row costs ``c_fp`` with probability ``1 - q``, an
    unflagged one ``c_fn`` with probability ``q``; rows are independent."""
    import numpy as np

    c = np.where(flagged, costs.false_positive, costs.false_negative)
    mean = np.where(flagged, 1.0 - q, q) * c
    variance = q * (1.0 - q) * c * c
    return float(mean.sum()), float(variance.sum())


def check_estimate(
    labels: Any,
    q: Any,
    scores: Any,
    *,
    threshold: float,
    costs: CostModel,
    cohorts: int,
    reference_se: float = 0.0,
    z: float = 1.96,
) -> EstimateCheck:
    """Realised against estimated cost per 1,000 on the same rows (see the module docstring).

    Args:
        labels: the matured 0/1 labels; ``q`` the calibrated probabilities of the same rows;
            ``scores`` their raw scores (flagged: ``score >= threshold``, as the platform
            decides everywhere).
        cohorts: how many chunks (e.g. days of predictions) the rows come from, reported.
        reference_se: the standard error of the estimated cost per 1,000 that comes from the
            calibration itself (:func:`calibration_se`); 0 ignores it.
    """
    import numpy as np

    y = np.asarray(labels, dtype=np.float64)
    qa = np.asarray(q, dtype=np.float64)
    flagged = np.asarray(scores, dtype=np.float64) >= threshold
    n = len(y)
    if n == 0:
        raise ValueError("no matured predictions to check the estimate on")
    expected, variance = expected_cost_terms(qa, flagged, costs)
    realised_cost = np.where(flagged, (1.0 - y) * costs.false_positive, y * costs.false_negative)
    estimated = 1000.0 * expected / n
    realised = 1000.0 * float(realised_cost.sum()) / n
    gap = realised - estimated
    se_rows = 1000.0 * math.sqrt(variance) / n
    se = math.sqrt(se_rows * se_rows + reference_se * reference_se)
    low, high = gap - z * se, gap + z * se
    significant = low > 0 or high < 0
    side = "above" if gap > 0 else "below"
    detail = (
        f"realised cost {realised:,.1f} per 1,000 against estimated {estimated:,.1f} on "
        f"{n} matured predictions ({cohorts} cohorts): gap {gap:+,.1f}, interval "
        f"{low:+,.1f} .. {high:+,.1f} (z {z:g}, se {se:,.1f})"
    )
    if significant:
        detail += f"; realised is {side} the estimate: the estimate no longer holds"
    return EstimateCheck(
        cohorts=cohorts,
        rows=n,
        positives=int(y.sum()),
        estimated_cost_per_1000=estimated,
        realised_cost_per_1000=realised,
        gap=gap,
        interval={
            "estimate": gap,
            "low": low,
            "high": high,
            "z": z,
            "se": se,
            "se_rows": se_rows,
            "se_calibration": reference_se,
            "statistic": "realised - estimated cost per 1,000; se: Poisson-binomial of the "
            "rows' costs under the calibrated probabilities, and of the holdout's",
        },
        significant=significant,
        detail=detail,
    )


def calibration_se(q: Any, scores: Any, *, threshold: float, costs: CostModel) -> float:
    """The standard error of the cost per 1,000 a calibration fitted on these (holdout) rows
    carries: the Poisson-binomial standard error of their own cost per 1,000."""
    import numpy as np

    qa = np.asarray(q, dtype=np.float64)
    if not len(qa):
        return 0.0
    flagged = np.asarray(scores, dtype=np.float64) >= threshold
    _, variance = expected_cost_terms(qa, flagged, costs)
    return 1000.0 * math.sqrt(variance) / len(qa)
