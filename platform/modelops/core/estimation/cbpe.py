"""Confidence-based performance estimation (CBPE): expected performance before labels arrive.

For a chunk of logged predictions with scores ``s_i`` and calibrated probabilities
``q_i = calibrate(calibration, s_i)`` (the estimate of ``P(y_i = 1 | x_i)``), a row is flagged
when ``s_i >= threshold`` (the platform's convention: :func:`modelops.core.metrics.
classification_metrics` and the scorer flag at or above the threshold). If ``P(y | x)`` is what
it was on the holdout, each label is an independent Bernoulli(``q_i``), so:

* ``E[TP] = sum_{flagged} q_i``, ``E[FP] = sum_{flagged} (1 - q_i)``,
  ``E[FN] = sum_{unflagged} q_i``, ``E[TN] = sum_{unflagged} (1 - q_i)``;
* alert rate ``= flagged / n`` (known, not estimated), expected precision
  ``= E[TP] / flagged`` (None when nothing is flagged), expected recall
  ``= E[TP] / (E[TP] + E[FN])`` (None when ``sum q = 0``);
* expected cost per 1,000 decisions ``= 1000 * (E[FN] * c_fn + E[FP] * c_fp) / n``, the
  realised formula of :mod:`modelops.core.stats.kernels` with expected counts;
* expected ROC-AUC: rows sorted by score, grouped by tied score; each group ``g`` adds
  ``P_g = sum q`` expected positives and ``N_g = sum (1 - q)`` expected negatives; the expected
  ROC curve runs from (0, 0) through the cumulative ``(FPR, TPR)`` from the highest score down
  to (1, 1) and its area is the trapezoid sum
  ``sum_g P_g * (N_below_g + N_g / 2) / (sum P * sum N)`` (None when either sum is 0). Within
  a group of equal ``q`` the curve is a straight line, so grouping by score or by ``q`` gives
  the same area.

The band (``z`` standard errors, 1.96 by default: a 95 % sampling band):

* cost per 1,000: ``FN = sum_{unflagged} y_i`` and ``FP = sum_{flagged} (1 - y_i)`` are sums of
  independent Bernoulli variables over disjoint rows (Poisson-binomial), so
  ``Var[FN] = sum_{unflagged} q (1 - q)``, ``Var[FP] = sum_{flagged} q (1 - q)`` and
  ``SE[cost per 1,000] = 1000 / n * sqrt(c_fn^2 Var[FN] + c_fp^2 Var[FP])``; the band is the
  estimate ``+- z SE``, floored at 0. It says how far the realised cost of *this* chunk may fall
  from its expectation by chance; it does not cover a change of ``P(y | x)`` (concept drift),
  which is what a realised value outside it signals.
* ROC-AUC: reference-based. On the holdout, each positive's share of negatives scored below it
  has a standard deviation ``sd_pos`` and each negative's share of positives scored above it
  ``sd_neg`` (the two structural components of the Mann-Whitney statistic, DeLong's); with
  ``r`` the holdout's positive rate, the standard error of a chunk of ``n`` rows is
  ``sqrt(sd_pos^2 / (r n) + sd_neg^2 / ((1 - r) n))`` (:class:`Reference`). nannyml 0.13.1
  keeps the first term only (``sd_pos / sqrt(r n)``); on 150 seeded chunks of 1,000 rows its
  95 % band covered the realised ROC-AUC in 85-87 % of chunks, with both terms 89-90 %. None
  without a reference.

Every estimate is labelled "expected performance if P(y|x) is unchanged". Pure numpy, no I/O.
"""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from modelops.core.estimation.calibration import Calibration, calibrate

if TYPE_CHECKING:
    import numpy as np

    from modelops.core.metrics import CostModel

LABEL = "expected performance if P(y|x) is unchanged"


class Reference(BaseModel):
    """What the reference-based ROC-AUC standard error needs, from the holdout's labels.

    Over the holdout (classes swapped when positives are the majority, as nannyml does):
    ``auc_component_sd``, the standard deviation over positives of the share of negatives
    scored below each (nannyml's component); ``negative_component_sd``, the standard deviation
    over negatives of the share of positives scored above each; ``positive_rate``, the
    (minority) positive class's share of rows.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rows: int = Field(gt=0)
    positives: int = Field(ge=0)
    positive_rate: float = Field(gt=0, lt=1)
    auc_component_sd: float = Field(ge=0)
    negative_component_sd: float = Field(ge=0)

    def roc_auc_standard_error(self, rows: int) -> float:
        """``sqrt(sd_pos^2 / (r rows) + sd_neg^2 / ((1 - r) rows))``: a chunk's ROC-AUC SE."""
        r = self.positive_rate
        return math.sqrt(
            self.auc_component_sd**2 / (r * rows) + self.negative_component_sd**2 / ((1 - r) * rows)
        )


class ChunkEstimate(BaseModel):
    """Expected performance of one chunk of predictions (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: datetime | None = None
    end: datetime | None = None
    rows: int = Field(gt=0)
    expected_positives: float
    alert_rate: float
    precision: float | None
    recall: float | None
    cost_per_1000: float
    cost_per_1000_low: float
    cost_per_1000_high: float
    roc_auc: float | None
    roc_auc_low: float | None
    roc_auc_high: float | None
    label: str = LABEL


def reference_from_holdout(scores: Any, labels: Any) -> Reference:
    """The :class:`Reference` of holdout rows (scores and their realised labels).

    As ``nannyml.sampling_error.binary_classification.auroc_sampling_error_components``: when
    positives are the majority the classes are swapped (labels ``1 - y``, scores ``1 - s``);
    rows are sorted by score (stably); the ``k``-th positive in ascending order at position
    ``r_k`` has ``r_k - k`` negatives below it, divided by the number of negatives;
    ``auc_component_sd`` is the population standard deviation of these shares. Likewise each
    negative's count of positives above it, divided by the number of positives, gives
    ``negative_component_sd``. Raises ValueError when the holdout holds a single class.
    """
    import numpy as np

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64)
    if s.ndim != 1 or y.shape != s.shape or len(s) == 0:
        raise ValueError(f"scores {s.shape} and labels {y.shape} must be 1-d, equal, non-empty")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    positives = int(y.sum())
    if positives == 0 or positives == len(y):
        raise ValueError("the holdout holds a single class: no ROC-AUC reference")
    if y.mean() > 0.5:
        y, s = 1 - y, 1 - s
    sorted_y = y[np.argsort(s, kind="stable")]
    pos_total = int(sorted_y.sum())
    neg_total = len(y) - pos_total
    ranks = np.flatnonzero(sorted_y == 1)
    negatives_below = (ranks - np.arange(pos_total)) / neg_total
    positives_above = (pos_total - np.cumsum(sorted_y))[sorted_y == 0] / pos_total
    return Reference(
        rows=len(y),
        positives=positives,
        positive_rate=pos_total / len(y),
        auc_component_sd=float(np.std(negatives_below)),
        negative_component_sd=float(np.std(positives_above)),
    )


def _expected_roc_auc(sorted_scores: np.ndarray, sorted_q: np.ndarray) -> float | None:
    import numpy as np

    from modelops.core.metrics import tie_groups

    starts = tie_groups(sorted_scores)
    pos = np.add.reduceat(sorted_q, starts)
    neg = np.add.reduceat(1.0 - sorted_q, starts)
    pos_total, neg_total = float(pos.sum()), float(neg.sum())
    if pos_total <= 0 or neg_total <= 0:
        return None
    below = np.cumsum(neg) - 0.5 * neg
    return float(np.dot(pos, below) / (pos_total * neg_total))


def estimate_chunk(
    scores: Any,
    *,
    calibration: Calibration,
    threshold: float,
    costs: CostModel,
    reference: Reference | None = None,
    z: float = 1.96,
    start: datetime | None = None,
    end: datetime | None = None,
) -> ChunkEstimate:
    """The :class:`ChunkEstimate` of one chunk of raw scores (formulas: module docstring).

    Raises ValueError for an empty chunk, scores that are not finite probabilities in [0, 1],
    a threshold that is not finite, or a negative ``z``.
    """
    import numpy as np

    s = np.asarray(scores, dtype=np.float64).ravel()
    n = len(s)
    if n == 0:
        raise ValueError("an empty chunk has no expected performance")
    if not (math.isfinite(threshold) and math.isfinite(z) and z >= 0):
        raise ValueError(f"threshold {threshold} and z {z} must be finite, z >= 0")
    sorted_s = np.sort(s)  # NaN sorts last
    if not (sorted_s[0] >= 0.0 and sorted_s[-1] <= 1.0):
        raise ValueError(
            f"scores must be finite probabilities in [0, 1], got {sorted_s[0]} to {sorted_s[-1]}"
        )
    sorted_q = calibrate(calibration, sorted_s)
    below = int(np.searchsorted(sorted_s, threshold, side="left"))  # unflagged rows
    flagged = n - below
    variance = sorted_q * (1.0 - sorted_q)
    e_fn = float(sorted_q[:below].sum())
    e_tp = float(sorted_q[below:].sum())
    e_fp = flagged - e_tp
    var_fn = float(variance[:below].sum())
    var_fp = float(variance[below:].sum())
    return _assemble(
        n, flagged, e_tp, e_fp, e_fn, var_fn, var_fp,
        _expected_roc_auc(sorted_s, sorted_q),
        costs=costs, reference=reference, z=z, start=start, end=end,
    )  # fmt: skip


def _assemble(
    n: int,
    flagged: int,
    e_tp: float,
    e_fp: float,
    e_fn: float,
    var_fn: float,
    var_fp: float,
    roc_auc: float | None,
    *,
    costs: CostModel,
    reference: Reference | None,
    z: float,
    start: datetime | None,
    end: datetime | None,
) -> ChunkEstimate:
    cfn, cfp = costs.false_negative, costs.false_positive
    cost = 1000.0 * (e_fn * cfn + e_fp * cfp) / n
    se = 1000.0 / n * math.sqrt(cfn * cfn * var_fn + cfp * cfp * var_fp)
    auc_low = auc_high = None
    if roc_auc is not None and reference is not None:
        auc_se = reference.roc_auc_standard_error(n)
        auc_low, auc_high = max(0.0, roc_auc - z * auc_se), min(1.0, roc_auc + z * auc_se)
    positives = e_tp + e_fn
    return ChunkEstimate(
        start=start,
        end=end,
        rows=n,
        expected_positives=positives,
        alert_rate=flagged / n,
        precision=e_tp / flagged if flagged else None,
        recall=e_tp / positives if positives > 0 else None,
        cost_per_1000=cost,
        cost_per_1000_low=max(0.0, cost - z * se),
        cost_per_1000_high=cost + z * se,
        roc_auc=roc_auc,
        roc_auc_low=auc_low,
        roc_auc_high=auc_high,
    )


def _nanoseconds(timestamps: Any) -> np.ndarray:
    """Timestamps as int64 nanoseconds since the epoch, UTC (naive ones read as UTC)."""
    import numpy as np
    import pandas as pd

    try:
        parsed = pd.to_datetime(pd.Series(np.asarray(timestamps)), utc=True)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"timestamps cannot be read as dates: {exc}") from None
    if parsed.isna().any():
        raise ValueError(f"{int(parsed.isna().sum())} timestamps are missing")
    naive = parsed.dt.tz_convert(None).to_numpy()
    return naive.astype("datetime64[ns]").astype(np.int64)


def _period_ns(period: str) -> int:
    import pandas as pd

    try:
        step = pd.Timedelta(period)
    except (ValueError, TypeError):
        raise ValueError(f"period {period!r} is not a fixed duration (e.g. 1D, 6h, 7D)") from None
    if step.value <= 0:
        raise ValueError(f"period {period!r} must be positive")
    return int(step.value)


def _at(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC).replace(
        microsecond=(ns % 1_000_000_000) // 1000
    )


def estimate_chunks(
    scores: Any,
    timestamps: Any,
    *,
    period: str | None = "1D",
    size: int | None = None,
    calibration: Calibration,
    threshold: float,
    costs: CostModel,
    reference: Reference | None = None,
    z: float = 1.96,
) -> list[ChunkEstimate]:
    """One :class:`ChunkEstimate` per chunk of predictions, in time order.

    ``size`` given: consecutive chunks of ``size`` rows in timestamp order (the last may be
    smaller), ``start``/``end`` the first and last timestamp in the chunk. Otherwise ``period``
    (a fixed duration pandas reads: ``1D``, ``6h``, ``7D``): chunks ``[start, end)`` aligned to
    the epoch, UTC; periods without rows are left out (no rows: no chunks). Raises ValueError
    for mismatched lengths, unreadable timestamps, a bad period or size.
    """
    import numpy as np

    s = np.asarray(scores, dtype=np.float64)
    ns = _nanoseconds(timestamps)
    if s.ndim != 1 or ns.shape != s.shape:
        raise ValueError(f"scores {s.shape} and timestamps {ns.shape} must be 1-d of equal length")
    common: dict[str, Any] = {
        "calibration": calibration, "threshold": threshold, "costs": costs,
        "reference": reference, "z": z,
    }  # fmt: skip
    if size is not None and size <= 0:
        raise ValueError(f"chunk size must be positive, got {size}")
    if size is None and period is None:
        raise ValueError("give a chunk period or a chunk size")
    step = _period_ns(period) if size is None and period is not None else 0
    if len(s) == 0:
        return []  # no predictions, no chunks
    order = np.argsort(ns, kind="stable")
    s, ns = s[order], ns[order]
    if size is not None:
        return [
            estimate_chunk(s[i : i + size], start=_at(int(ns[i])),
                           end=_at(int(ns[min(i + size, len(s)) - 1])), **common)
            for i in range(0, len(s), size)
        ]  # fmt: skip
    bucket = ns // step
    edges = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1], True])
    return [
        estimate_chunk(s[a:b], start=_at(int(bucket[a]) * step),
                       end=_at((int(bucket[a]) + 1) * step), **common)
        for a, b in itertools.pairwise(edges.tolist())
    ]  # fmt: skip
