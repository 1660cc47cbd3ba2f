"""Statistics that merge across partitions (core/stats/mergeable.py): the histogram metrics
against scikit-learn and the exact single-machine metrics, merges against the whole, and the
Poisson bootstrap's independence of partitioning."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from modelops.core.live_judgement import judge_drop, judge_drop_merged
from modelops.core.metrics import CostModel, classification_metrics
from modelops.core.stats import decide, paired_interval
from modelops.core.stats.kernels import Gain, Kernel
from modelops.core.stats.mergeable import (
    DEFAULT_BINS,
    HoldoutStats,
    RowSample,
    ScoreHistogram,
    poisson_paired,
    poisson_weights,
    row_hashes,
    segment_report,
    splitmix64,
)

COSTS = CostModel(false_negative=10.0, false_positive=1.0)
ROLES = ("candidate", "production")


def _holdout(n: int, seed: int, lift: tuple[float, float] = (1.2, 1.0), rate: float = 0.05):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(np.int64)
    c = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + lift[0] * y - 3)))
    r = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + lift[1] * y - 3)))
    region = np.where(rng.random(n) < 0.3, "north", "south").astype(object)
    return y, c, r, region, splitmix64(np.arange(n, dtype=np.uint64) + np.uint64(7 * seed))


def _stats(y, c, r, region, h, rows, *, k: int = 10_000) -> HoldoutStats:
    return HoldoutStats.of(
        y[rows],
        {"candidate": c[rows], "production": r[rows]},
        {"candidate": 0.1, "production": 0.12},
        h[rows],
        {"region": region[rows]},
        k=k,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_histogram_auc_matches_sklearn_within_1e4_at_4096_bins(seed: int) -> None:
    y, c, _, _, _ = _holdout(100_000, seed)
    m = ScoreHistogram.of(y, c, 0.1, DEFAULT_BINS).metrics(COSTS)
    assert abs(m["roc_auc"] - roc_auc_score(y, c)) < 1e-4
    assert abs(m["pr_auc"] - average_precision_score(y, c)) < 1e-3  # measured 1.3e-4


def test_coarse_bins_are_measurably_worse_so_the_auc_test_can_fail() -> None:
    y, c, _, _, _ = _holdout(100_000, 0)
    coarse = ScoreHistogram.of(y, c, 0.1, 16)
    error = abs(coarse.metrics(COSTS)["roc_auc"] - roc_auc_score(y, c))
    assert 1e-4 < error <= coarse.roc_auc_error_bound()


def test_the_error_bound_holds_for_scores_on_few_values() -> None:
    rng = np.random.default_rng(11)
    y = (rng.random(50_000) < 0.2).astype(np.int64)
    s = np.round(np.clip(0.15 + 0.05 * y + rng.normal(0, 0.03, len(y)), 0, 1), 3)  # 3 decimals
    hist = ScoreHistogram.of(y, s, 0.2)
    error = abs(hist.metrics(COSTS)["roc_auc"] - roc_auc_score(y, s))
    assert error <= hist.roc_auc_error_bound()


def test_decision_metrics_counts_and_losses_are_exact() -> None:
    y, c, _, _, _ = _holdout(50_000, 3)
    threshold = float(np.quantile(c, 0.9)) + 1e-7  # not a bin edge
    got = ScoreHistogram.of(y, c, threshold).metrics(COSTS)
    want = classification_metrics(y, c, threshold, COSTS)
    assert set(got) == set(want)
    for key in (
        "rows",
        "positives",
        "precision",
        "recall",
        "f1",
        "false_positive_rate",
        "alert_rate",
        "cost_per_1000",
        "threshold",
    ):
        assert got[key] == want[key], key
    assert got["log_loss"] == pytest.approx(want["log_loss"], rel=1e-12)
    assert got["brier"] == pytest.approx(want["brier"], rel=1e-12)
    assert got["ece"] == pytest.approx(want["ece"], abs=2e-3)


def test_awkward_inputs() -> None:
    with pytest.raises(ValueError, match="0 or 1"):
        ScoreHistogram.of([0, 2], [0.1, 0.2], 0.5)
    with pytest.raises(ValueError, match="probabilities"):
        ScoreHistogram.of([0, 1], [0.1, 1.5], 0.5)
    one_class = ScoreHistogram.of([0, 0, 0], [0.0, 1.0, 1.0], 0.5).metrics(COSTS)
    assert math.isnan(one_class["roc_auc"]) and one_class["alert_rate"] == pytest.approx(2 / 3)
    empty = ScoreHistogram.of([], [], 0.5).metrics(COSTS)
    assert empty["rows"] == 0 and math.isnan(empty["log_loss"])
    with pytest.raises(ValueError, match="cannot merge"):
        ScoreHistogram.of([0], [0.1], 0.5).merge(ScoreHistogram.of([0], [0.1], 0.4))


def test_merge_of_partitions_equals_the_whole() -> None:
    y, c, r, region, h = _holdout(30_000, 4)
    whole = _stats(y, c, r, region, h, np.arange(len(y)), k=500)
    parts = np.array_split(np.random.default_rng(9).permutation(len(y)), 7)
    merged = _stats(y, c, r, region, h, parts[0], k=500)
    for rows in parts[1:]:
        merged = merged.merge(_stats(y, c, r, region, h, rows, k=500))
    assert set(merged.segments) == set(whole.segments) == {"region=north", "region=south"}
    for a, b in [(merged.overall, whole.overall)] + [
        (merged.segments[k], whole.segments[k]) for k in whole.segments
    ]:
        for role in ROLES:
            ha, hb = a.histograms[role], b.histograms[role]
            assert np.array_equal(ha.positives, hb.positives)
            assert np.array_equal(ha.negatives, hb.negatives)
            assert (ha.flagged_positives, ha.flagged_negatives) == (
                hb.flagged_positives,
                hb.flagged_negatives,
            )
            assert np.allclose(ha.score_sum, hb.score_sum, rtol=1e-12)
            assert ha.log_loss_sum == pytest.approx(hb.log_loss_sum, rel=1e-12)
        order_a, order_b = np.argsort(a.sample.hashes), np.argsort(b.sample.hashes)
        assert np.array_equal(a.sample.hashes[order_a], b.sample.hashes[order_b])
        assert np.array_equal(a.sample.scores[order_a], b.sample.scores[order_b])


def test_row_sample_is_a_stratified_bottom_k() -> None:
    y, c, _, _, h = _holdout(20_000, 5, rate=0.1)
    sample = RowSample.of(h, y, c, k=300)
    assert np.count_nonzero(sample.labels == 1) == 300 == np.count_nonzero(sample.labels == 0)
    smallest_neg = np.sort(h[y == 0])[:300]
    assert np.array_equal(np.sort(sample.hashes[sample.labels == 0]), smallest_neg)
    picked = sample.stratified(int(y.sum()), len(y), 300)
    assert len(picked) == 300
    assert np.count_nonzero(sample.labels[picked] == 1) == round(300 * y.sum() / len(y))
    with pytest.raises(ValueError, match="per class"):
        sample.stratified(int(y.sum()), len(y), 5_000)


def test_poisson_weights_depend_only_on_the_row_and_the_replicate() -> None:
    h = splitmix64(np.arange(5_000, dtype=np.uint64))
    w = poisson_weights(h, 40, seed=3)
    perm = np.random.default_rng(0).permutation(len(h))
    assert np.array_equal(poisson_weights(h[perm], 40, seed=3), w[:, perm])
    assert np.array_equal(poisson_weights(h, 10, seed=3, first=30), w[30:])
    assert not np.array_equal(poisson_weights(h, 40, seed=4), w)
    # Poisson(1): mean 1, variance 1, P(0) = e^-1
    assert w.mean() == pytest.approx(1.0, abs=0.01)
    assert w.var() == pytest.approx(1.0, abs=0.02)
    assert (w == 0).mean() == pytest.approx(math.exp(-1), abs=0.005)


@pytest.mark.parametrize("metric", ["roc_auc", "pr_auc", "log_loss", "recall", "cost_per_1000"])
def test_weighted_kernel_equals_repeated_rows(metric: str) -> None:
    y, c, r, _, h = _holdout(2_000, 6, rate=0.2)
    gain = Gain(Kernel(metric, y, c, 0.1, COSTS), Kernel(metric, y, r, 0.12, COSTS), 1)
    w = poisson_weights(h, 5)
    repeated = [float(gain(np.repeat(np.arange(len(y)), row)[None, :])[0]) for row in w]
    assert np.allclose(gain.weighted(w), repeated, rtol=1e-12, atol=1e-15)


def test_bootstrap_is_reproducible_under_repartitioning() -> None:
    y, c, r, region, h = _holdout(40_000, 7)
    runs = []
    for parts in (1, 3, 8):
        chunks = np.array_split(np.random.default_rng(parts).permutation(len(y)), parts)
        stats = _stats(y, c, r, region, h, chunks[0], k=2_000)
        for rows in chunks[1:]:
            stats = stats.merge(_stats(y, c, r, region, h, rows, k=2_000))
        runs.append(poisson_paired("roc_auc", stats.overall, ROLES, costs=COSTS, max_rows=2_000))
    first = runs[0]
    for other in runs[1:]:
        assert other.interval == first.interval
        assert np.array_equal(other.gains, first.gains)
    assert first.interval.method == "Poisson BCa" and first.interval.subsampled


@pytest.mark.parametrize(
    ("lift", "decision", "margin", "passes"),
    [
        ((1.4, 1.0), "superiority", 0.0, True),  # clearly better
        ((1.0, 1.0), "non_inferiority", 0.02, True),  # the same model family
        ((0.7, 1.2), "non_inferiority", 0.01, False),  # clearly worse
    ],
)
def test_decision_equals_the_single_machine_decision(lift, decision, margin, passes) -> None:
    y, c, r, region, h = _holdout(60_000, 8, lift=lift)
    stats = _stats(y, c, r, region, h, np.arange(len(y)))
    spark_like = poisson_paired("roc_auc", stats.overall, ROLES, costs=COSTS).interval
    single = paired_interval("roc_auc", y, c, r)
    assert abs(spark_like.estimate - single.estimate) < 1e-4
    # same subsample size and rescaling: the bounds differ by bootstrap noise only
    width = single.high - single.low
    assert abs(spark_like.low - single.low) < 0.1 * width
    assert abs(spark_like.high - single.high) < 0.1 * width
    ours, theirs = decide(spark_like, decision, margin), decide(single, decision, margin)
    assert ours.passed == theirs.passed == passes


def test_segment_report_screens_on_every_row_and_flags_a_worse_segment() -> None:
    y, c, r, region, h = _holdout(60_000, 9)
    north = region == "north"
    c = np.where(north, r * 0.5 + 0.2 * np.random.default_rng(1).random(len(y)), c)  # noise
    rows = np.arange(len(y))
    stats = _stats(y, c, r, region, h, rows)
    report = segment_report(stats, "roc_auc", "non_inferiority", 0.01, costs=COSTS)
    assert "region=north" in report.failed and "region=south" not in report.failed
    assert not report.passed
    tiny = segment_report(stats, "roc_auc", "non_inferiority", 0.01, costs=COSTS, min_rows=len(y))
    assert set(tiny.skipped) == {"region=north", "region=south"}


def test_row_hashes_agree_for_spark_naive_and_pandas_aware_timestamps() -> None:
    import pandas as pd

    aware = pd.DataFrame(
        {
            "account": ["a", "b", "c"],
            "event_timestamp": pd.to_datetime(
                ["2026-01-01 10:00:00.000001", "2026-01-02 00:00:00.0", "2026-01-03 00:00:00.0"],
                utc=True,
            ),
        }
    )
    naive = aware.assign(
        event_timestamp=aware["event_timestamp"].dt.tz_localize(None).astype("datetime64[us]")
    )
    cols = ["account", "event_timestamp"]
    assert np.array_equal(row_hashes(aware, cols), row_hashes(naive, cols))
    assert len(set(row_hashes(aware, cols).tolist())) == 3
    shifted = aware.assign(event_timestamp=aware["event_timestamp"] + pd.Timedelta("1us"))
    assert not np.array_equal(row_hashes(shifted, cols), row_hashes(aware, cols))
    with pytest.raises(ValueError, match="not in the rows"):
        row_hashes(aware, ["nope"])


@pytest.mark.parametrize(("gate_value", "worse"), [(0.80, False), (0.86, True)])
def test_live_drop_from_merged_statistics_judges_as_on_rows(gate_value, worse) -> None:
    y, c, _, _, h = _holdout(40_000, 10, lift=(1.2, 1.2))
    stats = HoldoutStats.of(y, {"live": c}, {"live": 0.1}, h)
    merged = judge_drop_merged(
        "roc_auc", stats.overall, "live", gate_value, max_drop=0.02, costs=COSTS
    )
    rows = judge_drop("roc_auc", y, c, gate_value, max_drop=0.02, threshold=0.1, costs=COSTS)
    assert abs(merged.live - rows.live) < 1e-4
    assert merged.judged == rows.judged
    assert merged.worse == rows.worse == worse
    assert merged.interval["method"] == "Poisson BCa"


def test_live_drop_from_merged_statistics_fails_closed_on_one_class() -> None:
    y = np.zeros(500, dtype=np.int64)
    stats = HoldoutStats.of(y, {"live": np.full(500, 0.2)}, {"live": 0.1}, np.arange(500))
    drop = judge_drop_merged("roc_auc", stats.overall, "live", 0.8, max_drop=0.02, costs=COSTS)
    assert not drop.judged and not drop.worse and "rarer class" in drop.detail
