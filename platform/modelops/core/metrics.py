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


def expected_calibration_error(y_true: Any, scores: Any, bins: int = 10) -> float:
    """Weighted mean gap between predicted and observed rates over equal-count score bins."""
    import numpy as np

    y, s = _as_arrays(y_true, scores)
    if len(y) == 0:
        return float("nan")
    order = np.argsort(s, kind="stable")
    gaps = [
        abs(s[chunk].mean() - y[chunk].mean()) * len(chunk)
        for chunk in np.array_split(order, min(bins, len(y)))
        if len(chunk)
    ]
    return float(sum(gaps) / len(y))


def classification_metrics(
    y_true: Any, scores: Any, threshold: float, costs: CostModel
) -> dict[str, float]:
    """Ranking, probability and decision metrics, plus business cost per 1,000 decisions.

    Ranking metrics are NaN when ``y_true`` holds a single class.
    """
    import numpy as np
    from sklearn.metrics import (
        average_precision_score,
        brier_score_loss,
        log_loss,
        roc_auc_score,
    )

    y, s = _as_arrays(y_true, scores)
    both_classes = len(np.unique(y)) == 2
    flagged = s >= threshold
    tp = int(np.sum(flagged & (y == 1)))
    fp = int(np.sum(flagged & (y == 0)))
    fn = int(np.sum(~flagged & (y == 1)))
    tn = int(np.sum(~flagged & (y == 0)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    cost = fn * costs.false_negative + fp * costs.false_positive
    clipped = np.clip(s, 1e-15, 1 - 1e-15)
    return {
        "rows": float(len(y)),
        "positives": float(y.sum()),
        "positive_rate": float(y.mean()) if len(y) else float("nan"),
        "roc_auc": float(roc_auc_score(y, s)) if both_classes else float("nan"),
        "pr_auc": float(average_precision_score(y, s)) if both_classes else float("nan"),
        "log_loss": float(log_loss(y, clipped, labels=[0, 1])) if len(y) else float("nan"),
        "brier": float(brier_score_loss(y, s)) if len(y) else float("nan"),
        "ece": expected_calibration_error(y, s),
        "threshold": float(threshold),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "false_positive_rate": fp / (fp + tn) if fp + tn else 0.0,
        "alert_rate": float(flagged.mean()) if len(y) else float("nan"),
        "cost_per_1000": 1000.0 * cost / len(y) if len(y) else float("nan"),
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
    report: dict[str, dict[str, dict[str, float]]] = {}
    for column in segment_columns:
        report[column] = {
            str(value): classification_metrics(group[label], group[score], threshold, costs)
            for value, group in frame.groupby(column, observed=True, dropna=False)
            if len(group) >= min_rows
        }
    return report


LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece", "cost_per_1000"})


def _threshold_free_metric(name: str) -> Any:
    """The scikit-learn function for a metric that needs no threshold, else None."""
    from sklearn.metrics import (
        average_precision_score,
        brier_score_loss,
        log_loss,
        roc_auc_score,
    )

    return {
        "roc_auc": roc_auc_score,
        "pr_auc": average_precision_score,
        "log_loss": lambda y, s: log_loss(y, s, labels=[0, 1]),
        "brier": brier_score_loss,
    }.get(name)


def paired_bootstrap_interval(
    metric: str,
    y_true: Any,
    candidate: Any,
    reference: Any,
    *,
    resamples: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile interval of ``metric(candidate) - metric(reference)`` under resampling.

    Each resample draws the holdout rows with replacement and scores both models on the *same*
    rows (a paired bootstrap), so the interval reflects how much the difference owes to which rows
    happened to be in the holdout. None for metrics that need a threshold, or when too few
    resamples hold both classes.
    """
    import numpy as np

    function = _threshold_free_metric(metric)
    if function is None:
        return None
    y, a = _as_arrays(y_true, candidate)
    b = np.asarray(reference, dtype=np.float64)
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(resamples):
        rows = rng.integers(0, len(y), len(y))
        labels = y[rows]
        if labels.min() == labels.max():
            continue
        deltas.append(function(labels, a[rows]) - function(labels, b[rows]))
    if len(deltas) < resamples // 2:
        return None
    tail = (1 - level) / 2
    low, high = np.quantile(deltas, [tail, 1 - tail])
    return float(low), float(high)


def describe_in_business_terms(metrics: dict[str, float], event: str) -> str:
    """One sentence a risk manager reads, e.g. 'catches 80% of defaults at a 15% alert rate'."""
    return (
        f"catches {metrics['recall']:.0%} of {event} with a {metrics['false_positive_rate']:.1%} "
        f"false-alarm rate ({metrics['precision']:.0%} of flagged cases are real {event}); "
        f"cost {metrics['cost_per_1000']:,.0f} per 1,000 decisions"
    )
