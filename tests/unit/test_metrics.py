"""Business metrics: thresholds from costs, calibration, segment reports."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelops.core.metrics import (
    CostModel,
    choose_threshold,
    classification_metrics,
    expected_calibration_error,
    paired_bootstrap_interval,
    segment_metrics,
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


def test_paired_bootstrap_interval_brackets_noise_and_separates_real_gains() -> None:
    rng = np.random.default_rng(3)
    y = rng.binomial(1, 0.2, 3000)
    signal = y + rng.normal(0, 1.0, 3000)
    weak = y + rng.normal(0, 3.0, 3000)

    same = paired_bootstrap_interval("roc_auc", y, signal, signal)
    assert same == (0.0, 0.0)

    better = paired_bootstrap_interval("roc_auc", y, signal, weak)
    assert better is not None and 0 < better[0] < better[1]

    tiny = paired_bootstrap_interval("pr_auc", y, signal, signal + rng.normal(0, 0.01, 3000))
    assert tiny is not None and tiny[0] < 0 < tiny[1]  # a negligible change is within noise

    assert paired_bootstrap_interval("roc_auc", y, signal, weak, seed=1) != better
    assert paired_bootstrap_interval("roc_auc", y, signal, weak) == better  # seeded
    assert paired_bootstrap_interval("recall", y, signal, weak) is None  # needs a threshold
