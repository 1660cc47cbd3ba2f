"""Classification metrics in business terms: costs, thresholds, per-segment reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


@dataclass(frozen=True)
class CostModel:
    """Cost of one false negative and one false positive."""

    false_negative: float
    false_positive: float


def _as_arrays(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    return np.asarray(y_true, dtype=np.int64), np.asarray(scores, dtype=np.float64)


def choose_threshold(
    y_true: Any, scores: Any, costs: CostModel, policy: str, value: float | None = None
) -> float:
    """The decision threshold a policy picks on (validation) data.

    ``min_cost`` minimises ``FN * cost_fn + FP * cost_fp`` over every distinct score;
    ``fixed`` returns ``value``; ``max_alert_rate`` returns the lowest threshold flagging at
    most a ``value`` share of rows.
    """
    import numpy as np

    y, s = _as_arrays(y_true, scores)
    if policy == "fixed":
        assert value is not None
        return float(value)
    if policy == "max_alert_rate":
        assert value is not None
        if value <= 0:
            return float(np.nextafter(s.max(), np.inf))
        return float(np.quantile(s, 1 - value, method="higher"))
    order = np.argsort(-s, kind="stable")
    sorted_scores, sorted_y = s[order], y[order]
    tp = np.cumsum(sorted_y)
    fp = np.cumsum(1 - sorted_y)
    last_of_tie = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    tp, fp, candidates = tp[last_of_tie], fp[last_of_tie], sorted_scores[last_of_tie]
    fn = y.sum() - tp
    cost = fn * costs.false_negative + fp * costs.false_positive
    flag_nothing = y.sum() * costs.false_negative
    best = int(np.argmin(cost))
    if cost[best] >= flag_nothing:
        return float(np.nextafter(s.max(), np.inf))
    return float(candidates[best])


def score_order(scores: Any) -> np.ndarray:
    """Stable ascending argsort of ``scores``: the one sort :func:`classification_metrics` needs.

    Pass it as ``order=`` to reuse it for the same scores (ties stay in row order, which fixes
    the equal-count calibration bins).
    """
    import numpy as np

    return np.argsort(np.asarray(scores, dtype=np.float64), kind="stable")


def checked_order(s: np.ndarray, order: Any | None) -> np.ndarray:
    """``order`` checked to be the :func:`score_order` of ``s`` (linear), or computed if None.

    Raises ValueError when ``order`` does not sort ``s`` stably ascending.
    """
    import numpy as np

    if order is None:
        return np.argsort(s, kind="stable")
    o = np.asarray(order)
    if o.shape != s.shape or not np.issubdtype(o.dtype, np.integer):
        raise ValueError(f"order must be {len(s)} integer positions, got {o.dtype} {o.shape}")
    ordered = s[o]
    steps = np.diff(ordered)
    if np.any(steps < 0) or np.any(np.diff(o)[steps == 0] <= 0):
        raise ValueError("order is not the stable ascending argsort of the scores")
    return o


def tie_groups(sorted_scores: np.ndarray) -> np.ndarray:
    """Start positions of the runs of equal values in ascending ``sorted_scores``."""
    import numpy as np

    if len(sorted_scores) == 0:
        return np.zeros(0, dtype=np.intp)
    return np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])


def _roc_auc_from_groups(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """ROC-AUC from label counts per tie group, groups in ascending score order.

    ``positives[..., g]`` and ``negatives[..., g]`` count the labels of the rows sharing the
    g-th lowest score; leading axes are independent problems (bootstrap resamples). The
    trapezoidal area under the ROC curve, a tied positive-negative pair counting one half:
    scikit-learn's ``roc_auc_score``. NaN where a class is absent.
    """
    import numpy as np

    pos_total = positives.sum(axis=-1)
    neg_total = negatives.sum(axis=-1)
    negatives_under = np.cumsum(negatives, axis=-1)
    negatives_under -= 0.5 * negatives  # below the group, plus half of its own
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (positives * negatives_under).sum(axis=-1) / (pos_total * neg_total)
    return np.where((pos_total == 0) | (neg_total == 0), np.nan, auc)


def _average_precision_from_groups(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """Average precision from label counts per tie group (as :func:`_roc_auc_from_groups`).

    ``sum_k (R_k - R_(k-1)) * P_k`` over the distinct thresholds, highest first, where a
    threshold flags its whole tie group: scikit-learn's ``average_precision_score``. NaN
    where a class is absent.
    """
    import numpy as np

    pos_total = positives.sum(axis=-1, keepdims=True)
    neg_total = negatives.sum(axis=-1, keepdims=True)
    below_pos = np.cumsum(positives, axis=-1) - positives  # in lower-scoring groups
    below_all = below_pos + np.cumsum(negatives, axis=-1) - negatives
    tp = pos_total - below_pos  # positives scoring at least this group's score
    flagged = pos_total + neg_total - below_all  # rows scoring at least this group's score
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.divide(tp, flagged, out=np.zeros(flagged.shape), where=flagged > 0)
        ap = (positives * precision).sum(axis=-1) / pos_total[..., 0]
    return np.where((pos_total[..., 0] == 0) | (neg_total[..., 0] == 0), np.nan, ap)


def _equal_count_ece(sorted_scores: np.ndarray, sorted_labels: np.ndarray, bins: int) -> float:
    """ECE over ``min(bins, n)`` equal-count chunks of rows already sorted by score."""
    import numpy as np

    n = len(sorted_scores)
    if n == 0:
        return float("nan")
    chunks = min(bins, n)
    size, extra = divmod(n, chunks)
    sizes = np.full(chunks, size)
    sizes[:extra] += 1  # as np.array_split: the first chunks take one row more
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    gaps = np.add.reduceat(sorted_scores, starts) - np.add.reduceat(sorted_labels, starts)
    return float(np.abs(gaps).sum() / n)


def expected_calibration_error(
    y_true: Any, scores: Any, bins: int = 10, *, order: Any | None = None
) -> float:
    """Weighted mean gap between predicted and observed rates over equal-count score bins.

    Rows are sorted by score (stably: ties keep row order) and split into ``bins`` chunks whose
    sizes differ by at most one, the larger first. ``order``: a precomputed
    :func:`score_order` of ``scores``.
    """
    import numpy as np

    y, s = _as_arrays(y_true, scores)
    o = checked_order(s, order)
    return _equal_count_ece(s[o], y[o].astype(np.float64), bins)


def _validated(y: np.ndarray, s: np.ndarray) -> None:
    import numpy as np

    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"labels {y.shape} and scores {s.shape} must be 1-d of equal length")
    if len(y) and not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if len(s) and not (np.isfinite(s).all() and s.min() >= 0 and s.max() <= 1):
        raise ValueError("scores must be finite probabilities in [0, 1]")


def classification_metrics(
    y_true: Any,
    scores: Any,
    threshold: float,
    costs: CostModel,
    *,
    order: Any | None = None,
) -> dict[str, float]:
    """Ranking, probability and decision metrics, plus business cost per 1,000 decisions.

    Ranking metrics are NaN when ``y_true`` holds a single class. Everything comes from one
    stable ascending sort of the scores (``order``: pass a precomputed :func:`score_order` to
    reuse one), then linear passes: ROC-AUC and average precision from label counts per tie
    group (equal to scikit-learn's, ties included), the confusion counts at ``threshold`` by
    binary search, calibration bins from the same order. Log loss clips scores to
    ``[1e-15, 1 - 1e-15]`` as scikit-learn's ``log_loss(..., labels=[0, 1])`` does on them.
    On 5,000,000 rows this takes about a fifth of the time scikit-learn's four sorts did.
    Raises ValueError for labels other than 0/1 or scores outside ``[0, 1]``.
    """
    import numpy as np

    y, s = _as_arrays(y_true, scores)
    _validated(y, s)
    n = len(y)
    o = checked_order(s, order)
    sorted_scores = s[o]
    sorted_labels = y[o]
    positives_upto = np.r_[0, np.cumsum(sorted_labels)]  # positives among the i lowest scores
    positives = int(positives_upto[-1])

    starts = tie_groups(sorted_scores)
    group_pos = np.diff(positives_upto[np.r_[starts, n]]).astype(np.float64)
    group_neg = np.diff(np.r_[starts, n]) - group_pos
    roc_auc = _roc_auc_from_groups(group_pos, group_neg)
    pr_auc = _average_precision_from_groups(group_pos, group_neg)

    below = int(np.searchsorted(sorted_scores, threshold, side="left"))  # rows not flagged
    flagged = n - below
    tp = positives - int(positives_upto[below])
    fp = flagged - tp
    fn = positives - tp
    tn = n - positives - fp
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    cost = fn * costs.false_negative + fp * costs.false_positive

    clipped = np.clip(s, 1e-15, 1 - 1e-15)
    likelihood = np.where(y == 1, clipped, 1 - clipped)
    nan = float("nan")
    return {
        "rows": float(n),
        "positives": float(positives),
        "positive_rate": positives / n if n else nan,
        "roc_auc": float(roc_auc),
        "pr_auc": float(pr_auc),
        "log_loss": float(-np.log(likelihood).mean()) if n else nan,
        "brier": float(np.square(s - y).mean()) if n else nan,
        "ece": _equal_count_ece(sorted_scores, sorted_labels.astype(np.float64), 10),
        "threshold": float(threshold),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "false_positive_rate": fp / (fp + tn) if fp + tn else 0.0,
        "alert_rate": flagged / n if n else nan,
        "cost_per_1000": 1000.0 * cost / n if n else nan,
    }


def segment_rows(
    frame: pd.DataFrame, segment_columns: tuple[str, ...] | list[str]
) -> dict[str, list[tuple[Any, np.ndarray]]]:
    """``{segment column: [(value, row positions), ...]}``: the groups of
    ``frame.groupby(column, observed=True, dropna=False)``, in its order, found once so that
    several models' :func:`segment_metrics_of_rows` share them."""
    return {
        column: list(frame.groupby(column, observed=True, dropna=False).indices.items())
        for column in segment_columns
    }


def segment_metrics_of_rows(
    rows: dict[str, list[tuple[Any, np.ndarray]]],
    y_true: Any,
    scores: Any,
    threshold: float,
    costs: CostModel,
    min_rows: int = 50,
) -> dict[str, dict[str, dict[str, float]]]:
    """:func:`segment_metrics` from the groups of :func:`segment_rows` and arrays of labels
    and scores in the frame's row order."""
    y, s = _as_arrays(y_true, scores)
    return {
        column: {
            str(value): classification_metrics(y[positions], s[positions], threshold, costs)
            for value, positions in groups
            if len(positions) >= min_rows
        }
        for column, groups in rows.items()
    }


def segment_metrics(
    frame: pd.DataFrame,
    segment_columns: tuple[str, ...] | list[str],
    label: str,
    score: str,
    threshold: float,
    costs: CostModel,
    min_rows: int = 50,
) -> dict[str, dict[str, dict[str, float]]]:
    """``{segment column: {value: metrics}}`` for values with at least ``min_rows`` rows."""
    return segment_metrics_of_rows(
        segment_rows(frame, segment_columns),
        frame[label],
        frame[score],
        threshold,
        costs,
        min_rows,
    )


RANKING_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier")
"""Threshold-free metrics of the scores' ranking and probabilities."""
THRESHOLD_METRICS = ("precision", "recall", "f1", "false_positive_rate", "cost_per_1000")
"""Metrics of the decisions at a model's threshold."""
PRIMARY_METRICS = (*RANKING_METRICS, "precision", "recall", "f1")
"""What ``project.yaml``'s ``primary_metric`` may name (``config.project.Metric``)."""
FLOOR_METRICS = (*PRIMARY_METRICS, "cost_per_1000", "ece")
"""What ``promotion.floors`` may name."""

DIRECTION: dict[str, int] = {
    "roc_auc": 1,
    "pr_auc": 1,
    "log_loss": -1,
    "brier": -1,
    "ece": -1,
    "precision": 1,
    "recall": 1,
    "f1": 1,
    "false_positive_rate": -1,
    "alert_rate": 0,
    "cost_per_1000": -1,
}
"""Every metric the gate compares, in report order, and which way it improves: +1 higher is
better, -1 lower is better, 0 no direction (the alert rate is a choice, not a quality)."""

COMPARED_METRICS = tuple(DIRECTION)

LOWER_IS_BETTER = frozenset(name for name, sign in DIRECTION.items() if sign < 0)


def direction(metric: str) -> int:
    """+1 if higher ``metric`` is better, -1 if lower is, 0 if neither; KeyError if unknown."""
    try:
        return DIRECTION[metric]
    except KeyError:
        raise KeyError(
            f"unknown metric {metric!r}; compared metrics: {', '.join(DIRECTION)}"
        ) from None


def describe_in_business_terms(metrics: dict[str, float], event: str) -> str:
    """One sentence a risk manager reads, e.g. 'catches 80% of defaults at a 15% alert rate'."""
    return (
        f"catches {metrics['recall']:.0%} of {event} with a {metrics['false_positive_rate']:.1%} "
        f"false-alarm rate ({metrics['precision']:.0%} of flagged cases are real {event}); "
        f"cost {metrics['cost_per_1000']:,.0f} per 1,000 decisions"
    )
