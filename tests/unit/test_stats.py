"""Promotion statistics: paired BCa intervals of a gain, decisions, p-values, Holm, segments."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from modelops.core.metrics import (
    DIRECTION,
    THRESHOLD_METRICS,
    CostModel,
    classification_metrics,
    score_order,
)
from modelops.core.stats import (
    THRESHOLD_FREE,
    Interval,
    bca,
    bootstrap_pvalue,
    decide,
    holm,
    holm_adjusted,
    kernels,
    paired_bootstrap,
    paired_interval,
    segment_decisions,
    stratified_subsample,
)

COSTS = CostModel(false_negative=10.0, false_positive=1.0)
ALL_METRICS = THRESHOLD_FREE + THRESHOLD_METRICS


def _models(n: int, seed: int = 0, prevalence: float = 0.2) -> tuple[np.ndarray, ...]:
    """Labels, a good model's and a weaker model's probabilities on the same rows."""
    rng = np.random.default_rng(seed)
    y = rng.binomial(1, prevalence, n)
    good = 1 / (1 + np.exp(-(2.0 * y - 1.5 + rng.normal(0, 1, n))))
    weak = 1 / (1 + np.exp(-(0.7 * y - 1.5 + rng.normal(0, 1, n))))
    return y, good, weak


def _gain(metric: str, y: np.ndarray, cand: np.ndarray, ref: np.ndarray) -> float:
    mc = classification_metrics(y, cand, 0.3, COSTS)[metric]
    mr = classification_metrics(y, ref, 0.4, COSTS)[metric]
    return mr - mc if metric in {"log_loss", "brier", "ece", "false_positive_rate",
                                 "cost_per_1000"} else mc - mr  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("rounding", [None, 1, 2])
def test_resample_kernels_equal_classification_metrics_on_the_drawn_rows(
    seed: int, rounding: int | None
) -> None:
    # The bootstrap never re-sorts: it evaluates a resample from row multiplicities. Each
    # value must equal the metric computed directly on the drawn rows (ties included).
    rng = np.random.default_rng(seed)
    n = 300
    y, good, _ = _models(n, seed)
    s = good if rounding is None else np.round(good, rounding)
    rows = rng.integers(0, n, (6, n))
    for metric in ALL_METRICS:
        kernel = kernels.Kernel(metric, y, s, 0.3, COSTS)
        got = kernel.resampled(rows)
        for b in range(len(rows)):
            drawn = np.sort(rows[b])
            want = classification_metrics(y[drawn], s[drawn], 0.3, COSTS)[metric]
            assert got[b] == pytest.approx(want, abs=1e-12), (metric, b)


@pytest.mark.parametrize("rounding", [None, 1])
def test_leave_one_out_values_equal_the_metric_without_that_row(rounding: int | None) -> None:
    # BCa's jackknife is computed in linear time from prefix sums; check it row by row.
    y, good, _ = _models(120, seed=4)
    s = good if rounding is None else np.round(good, rounding)
    for metric in ALL_METRICS:
        left_out = kernels.Kernel(metric, y, s, 0.3, COSTS).without(np.arange(len(y)))
        for i in range(len(y)):
            rest = np.delete(np.arange(len(y)), i)
            want = classification_metrics(y[rest], s[rest], 0.3, COSTS)[metric]
            assert left_out[i] == pytest.approx(want, abs=1e-12), (metric, i)


def test_jackknife_resamples_are_recognised_and_others_are_not() -> None:
    n = 50
    jackknife = np.array([np.delete(np.arange(n), i) for i in (0, 17, 49)])
    assert kernels.jackknifed(jackknife, n).tolist() == [0, 17, 49]
    duplicated = jackknife.copy()
    duplicated[1, 5] = duplicated[1, 4]  # n - 1 rows, but one drawn twice
    assert kernels.jackknifed(duplicated, n) is None
    assert kernels.jackknifed(np.random.default_rng(0).integers(0, n, (3, n)), n) is None


def _scipy_bca(metric: str, y: np.ndarray, cand: np.ndarray, ref: np.ndarray) -> Any:
    """scipy's own BCa interval of the gain, with the gain computed by classification_metrics
    on the drawn rows (the library's jackknife and all: the reference to check against)."""
    from scipy.stats import bootstrap

    def gain(rows: np.ndarray, axis: int = -1) -> np.ndarray:
        batch = np.atleast_2d(rows)
        values = np.array([_gain(metric, y[r], cand[r], ref[r]) for r in batch])
        return values if rows.ndim == 2 else values[0]

    return bootstrap(
        (np.arange(len(y)),),
        gain,
        n_resamples=300,
        method="BCa",
        vectorized=True,
        paired=True,
        random_state=np.random.default_rng(0),
    )


@pytest.mark.parametrize("metric", ALL_METRICS)
def test_bca_interval_equals_scipys_bca_on_the_same_resamples(metric: str) -> None:
    # scipy draws the resamples; the BCa bounds are computed here from the linear-time
    # jackknife instead of scipy's (n - 1)-row jackknife resamples: same bounds to 1e-9.
    y, good, weak = _models(120, seed=21)
    ours = paired_bootstrap(
        metric, y, good, weak, threshold_c=0.3, threshold_r=0.4, costs=COSTS, resamples=300
    )
    want = _scipy_bca(metric, y, good, weak)
    assert ours.interval.method == "BCa" and ours.interval.reason == ""
    assert ours.interval.low == pytest.approx(want.confidence_interval.low, abs=1e-9)
    assert ours.interval.high == pytest.approx(want.confidence_interval.high, abs=1e-9)
    assert np.allclose(ours.gains, want.bootstrap_distribution, rtol=0, atol=1e-12)


@pytest.mark.parametrize("metric", ["roc_auc", "pr_auc", "ece", "log_loss", "recall"])
@pytest.mark.parametrize("rounding", [None, 1])
def test_bca_bounds_are_scipys_bit_for_bit_with_the_same_statistic(
    metric: str, rounding: int | None
) -> None:
    # scipy's BCa run on the very statistic the bootstrap uses (its jackknife recognised and
    # answered in linear time) gives exactly the bounds computed from the distribution.
    from scipy.stats import bootstrap

    y, good, weak = _models(400, seed=22)
    cand = good if rounding is None else np.round(good, rounding)
    sign = DIRECTION[metric]
    statistic = kernels.Gain(
        kernels.Kernel(metric, y, cand, 0.3, COSTS),
        kernels.Kernel(metric, y, weak, 0.4, COSTS),
        sign,
    )
    scipy_bca = bootstrap(
        (np.arange(len(y)),),
        statistic,
        n_resamples=500,
        method="BCa",
        vectorized=True,
        paired=True,
        random_state=np.random.default_rng(0),
    )
    distribution = np.asarray(scipy_bca.bootstrap_distribution)
    low, high = bca.bca_bounds(
        distribution, float(statistic(np.arange(len(y)))), statistic.jackknife(), 0.95
    )
    assert (low, high) == (scipy_bca.confidence_interval.low, scipy_bca.confidence_interval.high)
    ours = paired_bootstrap(
        metric, y, cand, weak, threshold_c=0.3, threshold_r=0.4, costs=COSTS, resamples=500
    )
    assert (ours.interval.low, ours.interval.high) == (low, high)
    assert np.array_equal(ours.gains, distribution)


def test_degenerate_bca_gives_nan_bounds_where_scipy_does() -> None:
    from scipy.stats import bootstrap
    from scipy.stats._warnings_errors import DegenerateDataWarning

    assert all(math.isnan(v) for v in bca.bca_bounds(np.zeros(100), 0.0, np.zeros(30), 0.95))
    with pytest.warns(DegenerateDataWarning, match="BCa confidence interval cannot be"):
        scipy_bca = bootstrap((np.zeros(30),), np.mean, n_resamples=100, method="BCa")
    assert math.isnan(scipy_bca.confidence_interval.low)
    same = paired_interval("roc_auc", *_models(300, seed=2)[:2], _models(300, seed=2)[1])
    assert same.method == "percentile"
    assert same.reason.startswith(f"BCa undefined ({bca.BCA_UNDEFINED})")


@pytest.mark.parametrize("metric", ALL_METRICS)
def test_estimate_is_the_gain_on_all_rows_positive_when_the_candidate_is_better(
    metric: str,
) -> None:
    y, good, weak = _models(1500, seed=5)
    interval = paired_interval(
        metric, y, good, weak, threshold_c=0.3, threshold_r=0.4, costs=COSTS, resamples=1000
    )
    assert interval.estimate == pytest.approx(_gain(metric, y, good, weak), abs=1e-12)
    assert interval.low <= interval.estimate <= interval.high
    if metric in ("roc_auc", "pr_auc", "log_loss", "brier"):
        assert interval.estimate > 0  # the good model is better on these, whatever direction


def test_a_real_gain_is_separated_from_zero_and_a_loss_is_not_non_inferior() -> None:
    y, good, weak = _models(3000, seed=6)
    better = paired_interval("roc_auc", y, good, weak)
    assert better.method == "BCa" and better.reason == ""
    assert 0 < better.low < better.estimate < better.high
    assert decide(better, "superiority", 0.0).passed

    worse = paired_interval("roc_auc", y, weak, good)
    assert worse.high < 0
    assert not decide(worse, "non_inferiority", 0.01).passed


def test_noise_sized_difference_is_within_the_interval() -> None:
    rng = np.random.default_rng(7)
    y, good, _ = _models(3000, seed=7)
    jittered = np.clip(good + rng.normal(0, 0.01, len(y)), 0, 1)
    interval = paired_interval("pr_auc", y, jittered, good)
    assert interval.low < 0 < interval.high
    assert decide(interval, "non_inferiority", 0.02).passed
    assert not decide(interval, "superiority", 0.0).passed


def test_lower_is_better_metrics_flip_the_sign() -> None:
    y, good, weak = _models(2000, seed=8)
    loss = paired_interval("log_loss", y, good, weak)
    c = classification_metrics(y, good, 0.5, COSTS)["log_loss"]
    r = classification_metrics(y, weak, 0.5, COSTS)["log_loss"]
    assert c < r and loss.estimate == pytest.approx(r - c, abs=1e-12) and loss.low > 0


def test_intervals_are_seeded() -> None:
    y, good, weak = _models(1000, seed=9)
    first = paired_interval("pr_auc", y, good, weak, resamples=1000)
    assert paired_interval("pr_auc", y, good, weak, resamples=1000) == first
    other = paired_interval("pr_auc", y, good, weak, resamples=1000, seed=1)
    assert (other.low, other.high) != (first.low, first.high)


def test_wider_level_gives_wider_interval() -> None:
    y, good, weak = _models(1500, seed=10)
    narrow = paired_interval("roc_auc", y, good, weak, level=0.8, resamples=1000)
    wide = paired_interval("roc_auc", y, good, weak, level=0.99, resamples=1000)
    assert wide.low < narrow.low and wide.high > narrow.high


def test_threshold_metrics_use_each_models_own_threshold() -> None:
    y, good, weak = _models(2000, seed=11)
    recall = paired_interval("recall", y, good, weak, threshold_c=0.5, threshold_r=0.2)
    at_own = (
        classification_metrics(y, good, 0.5, COSTS)["recall"]
        - classification_metrics(y, weak, 0.2, COSTS)["recall"]
    )
    assert recall.estimate == pytest.approx(at_own, abs=1e-12)
    swapped = paired_interval("recall", y, good, weak, threshold_c=0.2, threshold_r=0.5)
    assert swapped.estimate != pytest.approx(recall.estimate)

    with pytest.raises(ValueError, match="threshold"):
        paired_interval("recall", y, good, weak)
    with pytest.raises(ValueError, match="costs"):
        paired_interval("cost_per_1000", y, good, weak, threshold_c=0.5, threshold_r=0.5)
    with pytest.raises(ValueError, match="alert_rate"):
        paired_interval("alert_rate", y, good, weak, threshold_c=0.5, threshold_r=0.5)


def test_identical_models_fall_back_to_a_percentile_interval_at_zero() -> None:
    y, good, _ = _models(800, seed=12)
    same = paired_interval("roc_auc", y, good, good)
    assert (same.low, same.high, same.estimate) == (0.0, 0.0, 0.0)
    assert same.method == "percentile" and "BCa" in same.reason
    assert decide(same, "non_inferiority", 0.01).passed
    assert not decide(same, "superiority", 0.0).passed
    assert "percentile interval" in decide(same, "non_inferiority", 0.01).detail


def test_resamples_without_a_positive_are_dropped_or_void_the_interval() -> None:
    rng = np.random.default_rng(13)
    n = 60
    scores = rng.uniform(0, 1, n)
    other = rng.uniform(0, 1, n)

    four = np.zeros(n, dtype=int)
    four[:4] = 1  # a resample misses all four positives about 1.6% of the time
    few = paired_interval("roc_auc", four, scores, other)
    assert few.method == "percentile" and math.isfinite(few.low)
    assert "undefined on" in few.reason and "one class" in few.reason

    two = np.zeros(n, dtype=int)
    two[:2] = 1  # about 13% of resamples miss both: too many to drop
    void = paired_interval("roc_auc", two, scores, other)
    assert math.isnan(void.low) and math.isnan(void.high) and "no interval" in void.reason
    decision = decide(void, "non_inferiority", 1.0)
    assert not decision.passed and void.reason in decision.detail


def test_single_class_holdout_has_no_interval_and_fails() -> None:
    y = np.zeros(500, dtype=int)
    scores = np.linspace(0, 1, 500)
    interval = paired_interval("pr_auc", y, scores, scores[::-1])
    assert not interval.finite and "one class" in interval.reason
    assert not decide(interval, "non_inferiority", 0.5).passed


def test_large_holdouts_are_subsampled_stratified_and_recentred_on_the_full_gain() -> None:
    y, good, weak = _models(8_000, seed=14, prevalence=0.05)
    interval = paired_interval("pr_auc", y, good, weak, max_rows=1_000, resamples=1000)
    assert interval.subsampled and interval.rows_used == 1_000
    assert interval.rows_total == 8_000
    assert interval.estimate == pytest.approx(_gain("pr_auc", y, good, weak), abs=1e-12)
    assert interval.low < interval.estimate < interval.high
    assert "stratified subsample of 8,000" in decide(interval, "superiority", 0.0).detail
    # It is the subsample's own interval, re-centred on the gain over all rows and narrowed by
    # sqrt(1,000 / 8,000) (m-out-of-n bootstrap).
    rows = stratified_subsample(y, 1_000)
    own = paired_interval("pr_auc", y[rows], good[rows], weak[rows], resamples=1000)
    scale = (1_000 / 8_000) ** 0.5
    assert abs(interval.estimate - own.estimate) > 1e-3
    assert interval.low == pytest.approx(
        interval.estimate + (own.low - own.estimate) * scale, abs=1e-12
    )
    assert interval.high == pytest.approx(
        interval.estimate + (own.high - own.estimate) * scale, abs=1e-12
    )
    full = paired_interval("pr_auc", y, good, weak, max_rows=8_000, resamples=1000)
    assert not full.subsampled
    # The rescaled width estimates the full holdout's: far narrower than the subsample's own.
    width, full_width = interval.high - interval.low, full.high - full.low
    assert 0.6 * full_width < width < 1.6 * full_width
    assert width < 0.6 * (own.high - own.low)


def test_stratified_subsample_keeps_prevalence_and_is_deterministic() -> None:
    y = np.r_[np.ones(300, dtype=int), np.zeros(9_700, dtype=int)]
    np.random.default_rng(0).shuffle(y)
    rows = stratified_subsample(y, 1_000, seed=3)
    assert len(rows) == 1_000 and len(np.unique(rows)) == 1_000
    assert np.all(np.diff(rows) > 0)
    assert y[rows].sum() == 30  # exactly 3%, as in the holdout
    assert np.array_equal(rows, stratified_subsample(y, 1_000, seed=3))
    assert not np.array_equal(rows, stratified_subsample(y, 1_000, seed=4))
    rare = np.zeros(100_000, dtype=int)
    rare[7] = 1
    assert rare[stratified_subsample(rare, 1_000)].sum() == 1  # a rare class is kept
    assert np.array_equal(stratified_subsample(y, 50_000), np.arange(len(y)))


def test_precomputed_orders_give_the_same_interval_and_wrong_ones_are_refused() -> None:
    y, good, weak = _models(3000, seed=15)
    plain = paired_interval("roc_auc", y, good, weak, max_rows=1000, resamples=1000)
    reused = paired_interval(
        "roc_auc",
        y,
        good,
        weak,
        max_rows=1000,
        resamples=1000,
        orders=(score_order(good), score_order(weak)),
    )
    assert reused == plain
    with pytest.raises(ValueError, match="order"):
        paired_interval("roc_auc", y, good, weak, orders=(score_order(weak), score_order(good)))


def test_decision_sentence_carries_the_numbers() -> None:
    interval = Interval(
        metric="pr_auc",
        estimate=0.012,
        low=-0.004,
        high=0.027,
        level=0.95,
        method="BCa",
        resamples=2000,
        rows_used=4012,
        rows_total=4012,
        subsampled=False,
    )
    ok = decide(interval, "non_inferiority", 0.01)
    assert ok.passed
    assert ok.detail == (
        "pr_auc gain +0.012 (95% BCa interval -0.004 to +0.027, 2,000 paired resamples on "
        "4,012 rows): non-inferior within margin 0.01"
    )
    tight = decide(interval, "non_inferiority", 0.004)  # the bound must be strictly above
    assert not tight.passed and "not shown non-inferior" in tight.detail
    sup = decide(interval, "superiority", 0.0)
    assert not sup.passed and "lower bound -0.004" in sup.detail
    assert interval.to_dict()["rows_used"] == 4012 and interval.to_dict()["method"] == "BCa"
    with pytest.raises(ValueError):
        decide(interval, "non_inferiority", -0.01)


def test_bootstrap_pvalues_count_the_resamples_on_the_null_side() -> None:
    gains = np.r_[np.full(10, -0.02), np.full(90, 0.05)]
    assert bootstrap_pvalue(gains, "non_inferiority", 0.01) == pytest.approx(11 / 101)
    assert bootstrap_pvalue(gains, "superiority", 0.01) == pytest.approx(11 / 101)
    assert bootstrap_pvalue(gains, "superiority", 0.06) == pytest.approx(1.0)
    assert bootstrap_pvalue(gains, "degradation", 0.01) == pytest.approx(91 / 101)
    assert bootstrap_pvalue(-gains, "degradation", 0.01) == pytest.approx(11 / 101)
    assert math.isnan(bootstrap_pvalue([], "non_inferiority", 0.01))


def test_pvalues_from_a_bootstrap_agree_with_its_percentiles() -> None:
    y, good, weak = _models(3000, seed=16)
    run = paired_bootstrap("roc_auc", y, good, weak)
    assert len(run.gains) == 2000
    q = float(np.quantile(run.gains, 0.025))
    step = 0.2 * float(np.std(run.gains))
    assert q > step  # a real gain: the test below can use non-negative margins
    # p <= 2.5% exactly when the bound lies below the 2.5% point of the resampled gains.
    assert bootstrap_pvalue(run.gains, "superiority", q - step) < 0.025
    assert bootstrap_pvalue(run.gains, "superiority", q + step) > 0.025
    assert bootstrap_pvalue(run.gains, "non_inferiority", 0.0) == pytest.approx(1 / 2001)
    assert bootstrap_pvalue(run.gains, "degradation", 0.0) == pytest.approx(1.0)


def test_holm_steps_down_and_stops_at_the_first_non_rejection() -> None:
    # Sorted: d .005 <= .05/4, a .01 <= .05/3, c .03 > .05/2: stop; b is not rejected
    # although .04 <= .05 on its own.
    assert holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005}, 0.05) == {
        "a": True,
        "b": False,
        "c": False,
        "d": True,
    }
    # More powerful than Bonferroni (which would reject only x): .01 <= .05/3, .02 <= .05/2,
    # .04 <= .05.
    assert holm({"x": 0.01, "y": 0.02, "z": 0.04}, 0.05) == {"x": True, "y": True, "z": True}
    assert holm({"x": 0.001, "nan": math.nan}, 0.05) == {"x": True, "nan": False}
    assert holm({}, 0.05) == {}


def test_holm_adjusted_pvalues_reject_exactly_what_holm_rejects() -> None:
    rng = np.random.default_rng(17)
    for _ in range(50):
        pvalues = {f"s{i}": float(p) for i, p in enumerate(rng.uniform(0, 0.1, 6))}
        adjusted = holm_adjusted(pvalues)
        assert holm(pvalues, 0.05) == {k: adjusted[k] <= 0.05 for k in pvalues}
        assert all(adjusted[k] >= p for k, p in pvalues.items())


def _segments() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    y, good, weak = _models(2000, seed=18)
    rng = np.random.default_rng(18)
    jitter = np.clip(good + rng.normal(0, 0.005, len(y)), 0, 1)
    tiny = slice(0, 50)
    no_events = np.zeros(500, dtype=int)
    no_events[:5] = 1
    return {
        "region=north": (y[:1000], weak[:1000], good[:1000]),  # the candidate is much worse
        "region=south": (y[1000:], jitter[1000:], good[1000:]),  # the same up to noise
        "region=island": (y[tiny], weak[tiny], good[tiny]),
        "region=east": (no_events, good[:500], weak[:500]),
    }


def test_segments_fail_only_when_shown_worse_after_holm() -> None:
    report = segment_decisions(_segments(), "roc_auc", "non_inferiority", 0.02)
    assert set(report.compared) == {"region=north", "region=south"}
    assert set(report.skipped) == {"region=island", "region=east"}
    assert "50 rows" in report.skipped["region=island"]
    assert "5 positive" in report.skipped["region=east"]
    assert set(report.failed) == {"region=north"}
    north = report.compared["region=north"]
    assert north.degraded and north.adjusted_pvalue <= 0.05
    assert north.interval.high < -0.02  # the interval agrees: worse by more than the margin
    assert "worse than -0.02" in report.failed["region=north"]
    assert not report.compared["region=south"].degraded
    assert not report.passed
    assert "2 segments compared" in report.detail and "2 skipped" in report.detail
    assert report.to_dict()["failed"] == report.failed
    assert report.resamples == 1000


def test_segments_within_noise_pass() -> None:
    segments = {k: v for k, v in _segments().items() if k != "region=north"}
    report = segment_decisions(segments, "roc_auc", "non_inferiority", 0.02)
    assert report.passed and not report.failed
    assert "none shown worse than -0.02" in report.detail


def test_a_huge_margin_forgives_even_the_degraded_segment() -> None:
    report = segment_decisions(_segments(), "roc_auc", "non_inferiority", 0.5)
    assert report.passed


def test_no_comparable_segment_fails_and_says_so() -> None:
    segments = {k: v for k, v in _segments().items() if k in ("region=island", "region=east")}
    report = segment_decisions(segments, "roc_auc", "non_inferiority", 0.02)
    assert not report.passed and not report.compared
    assert report.detail.startswith("no segment could be compared")
    assert "region=island" in report.detail


def test_segments_need_at_least_a_thousand_resamples() -> None:
    with pytest.raises(ValueError, match="1,000"):
        segment_decisions(_segments(), "roc_auc", "non_inferiority", 0.02, resamples=500)
