"""Business metrics: thresholds from costs, calibration, segment reports."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
)

from modelops.core.metrics import (
    DIRECTION,
    LOWER_IS_BETTER,
    CostModel,
    choose_threshold,
    classification_metrics,
    direction,
    expected_calibration_error,
    score_order,
    segment_metrics,
    segment_metrics_of_rows,
    segment_rows,
)

COSTS = CostModel(false_negative=10.0, false_positive=1.0)


def test_min_cost_threshold_beats_every_other_threshold() -> None:
    rng = np.random.default_rng(0)
    y = rng.binomial(1, 0.1, 2000)
    scores = np.clip(0.1 + 0.3 * y + rng.normal(0, 0.15, 2000), 0, 1)
    best = choose_threshold(y, scores, COSTS, "min_cost")

    def cost(t: float) -> float:
        flagged = scores >= t
        return ((~flagged) & (y == 1)).sum() * 10.0 + (flagged & (y == 0)).sum() * 1.0

    assert all(cost(best) <= cost(t) for t in np.linspace(0, 1, 101))


def test_min_cost_flags_nothing_when_flagging_never_pays() -> None:
    y = np.array([0, 0, 0, 1])
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    threshold = choose_threshold(y, scores, CostModel(1.0, 100.0), "min_cost")
    assert (scores >= threshold).sum() == 0


def test_alert_rate_policy_caps_the_share_flagged() -> None:
    scores = np.linspace(0, 1, 1000)
    threshold = choose_threshold(np.zeros(1000), scores, COSTS, "max_alert_rate", 0.05)
    assert (scores >= threshold).mean() == pytest.approx(0.05, abs=0.002)


def test_decision_metrics_and_cost_per_thousand() -> None:
    y = np.array([1, 1, 0, 0, 0, 1])
    scores = np.array([0.9, 0.2, 0.8, 0.1, 0.3, 0.7])
    m = classification_metrics(y, scores, 0.5, COSTS)
    assert (m["precision"], m["recall"]) == pytest.approx((2 / 3, 2 / 3))
    assert m["cost_per_1000"] == pytest.approx(1000 * (1 * 10 + 1 * 1) / 6)
    assert m["false_positive_rate"] == pytest.approx(1 / 3)


def _holdout(seed: int, n: int, decimals: int | None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.binomial(1, rng.uniform(0.02, 0.5), n)
    s = np.clip(0.3 * y + rng.beta(2, 5, n), 0, 1)
    return y, (s if decimals is None else np.round(s, decimals))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("decimals", [None, 3, 2, 1, 0])
def test_one_sort_metrics_equal_scikit_learn_with_ties(seed: int, decimals: int | None) -> None:
    # Rounded scores make large tie groups (decimals=0: two distinct scores), where a wrong
    # tie rule shows at once in ROC-AUC and average precision.
    y, s = _holdout(seed, 5_000, decimals)
    m = classification_metrics(y, s, 0.5, COSTS)
    clipped = np.clip(s, 1e-15, 1 - 1e-15)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert m["log_loss"] == pytest.approx(log_loss(y, clipped, labels=[0, 1]), abs=1e-12)
    assert m["brier"] == pytest.approx(brier_score_loss(y, s), abs=1e-12)


def _ece_by_definition(y: np.ndarray, s: np.ndarray, bins: int = 10) -> float:
    order = np.argsort(s, kind="stable")
    chunks = np.array_split(order, min(bins, len(y)))
    return sum(abs(s[c].mean() - y[c].mean()) * len(c) for c in chunks) / len(y)


@pytest.mark.parametrize("decimals", [None, 1])
def test_calibration_error_reuses_the_sort_with_array_split_bins(decimals: int | None) -> None:
    for seed, n in ((0, 7), (1, 1003), (2, 20_011)):
        y, s = _holdout(seed, n, decimals)
        want = _ece_by_definition(y, s)
        assert classification_metrics(y, s, 0.5, COSTS)["ece"] == pytest.approx(want, abs=1e-12)
        assert expected_calibration_error(y, s) == pytest.approx(want, abs=1e-12)


def test_decision_counts_at_thresholds_on_ties_and_beyond_the_scores() -> None:
    y, s = _holdout(3, 2_000, 1)
    for threshold in (-1.0, 0.0, 0.3, float(s[17]), 0.55, float(s.max()), 1.5):
        m = classification_metrics(y, s, threshold, COSTS)
        flagged = s >= threshold  # a score equal to the threshold is flagged
        tp = int((flagged & (y == 1)).sum())
        fp = int((flagged & (y == 0)).sum())
        fn = int((~flagged & (y == 1)).sum())
        assert m["alert_rate"] == flagged.mean()
        assert m["recall"] == (tp / (tp + fn) if tp + fn else 0.0)
        assert m["precision"] == (tp / (tp + fp) if tp + fp else 0.0)
        assert m["false_positive_rate"] == fp / (y == 0).sum()
        assert m["cost_per_1000"] == pytest.approx(1000 * (fn * 10.0 + fp * 1.0) / len(y))


def test_a_precomputed_order_gives_identical_metrics_and_a_wrong_one_is_refused() -> None:
    y, s = _holdout(4, 3_000, 2)
    order = score_order(s)
    assert classification_metrics(y, s, 0.4, COSTS, order=order) == classification_metrics(
        y, s, 0.4, COSTS
    )
    assert expected_calibration_error(y, s, order=order) == expected_calibration_error(y, s)
    with pytest.raises(ValueError, match="order"):
        classification_metrics(y, s, 0.4, COSTS, order=order[::-1])
    unstable = order.copy()
    ties = np.flatnonzero(np.diff(s[order]) == 0)[0]
    unstable[[ties, ties + 1]] = unstable[[ties + 1, ties]]  # same scores, rows swapped
    with pytest.raises(ValueError, match="stable"):
        classification_metrics(y, s, 0.4, COSTS, order=unstable)
    with pytest.raises(ValueError, match="order"):
        classification_metrics(y, s, 0.4, COSTS, order=order[:-1])


def test_labels_and_scores_are_validated() -> None:
    with pytest.raises(ValueError, match="labels"):
        classification_metrics([0, 2, 1], [0.1, 0.5, 0.9], 0.5, COSTS)
    with pytest.raises(ValueError, match="probabilities"):
        classification_metrics([0, 1], [0.1, 1.2], 0.5, COSTS)
    with pytest.raises(ValueError, match="probabilities"):
        classification_metrics([0, 1], [0.1, float("nan")], 0.5, COSTS)


def test_no_rows_gives_nan_rates_and_zero_counts() -> None:
    m = classification_metrics(np.array([], dtype=int), np.array([]), 0.5, COSTS)
    assert m["rows"] == 0 and m["positives"] == 0
    assert all(np.isnan(m[k]) for k in ("roc_auc", "pr_auc", "log_loss", "ece", "alert_rate"))


def test_direction_says_which_way_each_metric_improves() -> None:
    # A perfect ranking and calibration beats a coin flip on every directional metric.
    rng = np.random.default_rng(5)
    y = rng.binomial(1, 0.3, 4_000)
    perfect = classification_metrics(y, y.astype(float), 0.5, COSTS)
    coin = classification_metrics(y, rng.uniform(0, 1, len(y)), 0.5, COSTS)
    compared = set(DIRECTION)
    assert compared <= set(perfect)
    assert compared >= set(perfect) - {"rows", "positives", "positive_rate", "threshold"}
    for metric, sign in DIRECTION.items():
        assert direction(metric) == sign
        if sign:
            assert np.sign(perfect[metric] - coin[metric]) == sign, metric
    assert direction("alert_rate") == 0
    assert {m for m, sign in DIRECTION.items() if sign < 0} == LOWER_IS_BETTER
    assert "false_positive_rate" in LOWER_IS_BETTER
    with pytest.raises(KeyError, match="roc"):
        direction("rocauc")


def test_single_class_gives_nan_ranking_metrics() -> None:
    m = classification_metrics(np.zeros(10), np.linspace(0, 1, 10), 0.5, COSTS)
    assert np.isnan(m["roc_auc"]) and np.isnan(m["pr_auc"])


def test_calibration_error_is_zero_for_calibrated_and_large_for_overconfident() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, 50_000)
    y = rng.binomial(1, p)
    assert expected_calibration_error(y, p) < 0.01
    assert expected_calibration_error(y, np.where(p > 0.5, 0.99, 0.01)) > 0.15


def test_segment_metrics_skip_small_segments() -> None:
    frame = pd.DataFrame(
        {
            "sector": ["a"] * 100 + ["b"] * 10,
            "y": [0, 1] * 55,
            "s": np.linspace(0, 1, 110),
        }
    )
    report = segment_metrics(frame, ["sector"], "y", "s", 0.5, COSTS)
    assert list(report["sector"]) == ["a"]
    assert report["sector"]["a"]["rows"] == 100


def test_segment_rows_give_the_groupby_segments_for_every_model() -> None:
    # Found once per holdout and shared by the models: the same groups, in groupby's order
    # (missing values last), with the same metrics as grouping each scored frame.
    rng = np.random.default_rng(4)
    n = 3000
    sector = rng.choice(np.array(["retail", "food", "travel", None], dtype=object), n)
    frame = pd.DataFrame(
        {
            "sector": sector,
            "tier": pd.Categorical(rng.choice(["gold", "basic"], n), ["silver", "gold", "basic"]),
            "size": rng.integers(0, 4, n),
            "y": rng.binomial(1, 0.3, n),
        }
    )
    columns = ["sector", "tier", "size"]
    by_segment = segment_rows(frame, columns)
    for seed in range(2):
        scores = np.round(np.random.default_rng(seed).uniform(0, 1, n), 2)
        want = {
            column: {
                str(value): classification_metrics(group["y"], group["s"], 0.5, COSTS)
                for value, group in frame.assign(s=scores).groupby(
                    column, observed=True, dropna=False
                )
                if len(group) >= 50
            }
            for column in columns
        }
        got = segment_metrics_of_rows(by_segment, frame["y"], scores, 0.5, COSTS)
        assert list(got["sector"]) == ["food", "retail", "travel", "nan"]
        assert {c: list(v) for c, v in got.items()} == {c: list(v) for c, v in want.items()}
        assert got == want
        assert segment_metrics(frame.assign(s=scores), columns, "y", "s", 0.5, COSTS) == want


def test_metric_names_are_listed_once() -> None:
    """project.yaml's primary_metric type is the metrics module's list, spelled as a Literal."""
    from typing import get_args

    from modelops.config.project import Metric
    from modelops.core import metrics

    assert get_args(Metric) == metrics.PRIMARY_METRICS
    assert set(metrics.FLOOR_METRICS) <= set(metrics.DIRECTION) | {"ece"}
    assert set(metrics.RANKING_METRICS) | set(metrics.THRESHOLD_METRICS) <= set(metrics.DIRECTION)
