"""Interleaved latency, robust to a busy machine: timed on a counting clock (deterministic)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from modelops.core.latency import LatencyComparison, interleaved_latency, judge_latency

ROWS = [1500, 1750, 2000, 2250]


class CountingClock:
    """A clock that moves only when a scorer works: each scorer advances it by its known cost.

    Latency is counted, not measured, so the tests are deterministic. ``load`` multiplies the
    cost of whatever runs while it is set, as a busy machine slows every call it overlaps."""

    def __init__(self) -> None:
        self.ns = 0
        self.load = 1.0

    def __call__(self) -> int:
        return self.ns

    def scorer(self, cost_ms: Callable[[Any], float]) -> Callable[[Any], None]:
        def score(row: Any) -> None:
            self.ns += round(cost_ms(row) * 1e6 * self.load)

        return score


def _fixed(ms: float) -> Callable[[Any], float]:
    return lambda row: ms


def _work(row: int) -> float:
    """A known workload: one microsecond per unit of the row, like a model whose cost grows
    with its input."""
    return row / 1000


def test_a_model_that_takes_twice_as_long_has_a_ratio_near_two() -> None:
    clock = CountingClock()
    comparison = interleaved_latency(
        clock.scorer(_fixed(4)), clock.scorer(_fixed(2)), ROWS, warmup=2, samples=30, clock=clock
    )
    assert comparison.samples == 30
    assert len(comparison.candidate_ms) == len(comparison.reference_ms) == 30
    assert 1.5 < comparison.ratio_p50 < 2.5
    assert comparison.candidate_p50 >= 4.0 and comparison.reference_p50 >= 2.0
    assert comparison.candidate_p95 >= comparison.candidate_p50
    passed, detail = judge_latency(comparison, max_ms=50, max_ratio=1.5)
    assert not passed
    assert "slower than 1.5x" in detail


def _busy(clock: CountingClock, score: Callable[[Any], None]) -> Callable[[Any], None]:
    """``score`` on a machine whose load changes from one pair to the next (3x to 8x), and
    changes between the two calls of every seventh pair (a burst that starts mid-pair)."""
    calls = [0]
    loads = (3.0, 5.0, 8.0, 4.0)

    def call(row: Any) -> None:
        pair, second = divmod(calls[0], 2)
        calls[0] += 1
        clock.load = loads[pair % len(loads)] * (2.0 if second and pair % 7 == 0 else 1.0)
        score(row)

    return call


def test_load_inflates_absolute_times_but_not_the_paired_ratio() -> None:
    clock = CountingClock()
    candidate, reference = clock.scorer(_work), clock.scorer(_work)
    quiet = interleaved_latency(candidate, reference, ROWS, warmup=3, samples=60, clock=clock)
    both = _busy(clock, lambda row: (candidate if row[1] == "c" else reference)(row[0]))
    loaded = interleaved_latency(
        lambda row: both((row, "c")),
        lambda row: both((row, "r")),
        ROWS,
        warmup=3,
        samples=60,
        clock=clock,
    )

    assert 0.5 < quiet.ratio_p50 < 2.0
    assert 0.5 < loaded.ratio_p50 < 2.0  # the paired ratio did not move...
    passed, _ = judge_latency(loaded, max_ms=1000, max_ratio=2.0, floor_ms=0.0)
    assert passed
    assert loaded.candidate_p50 > 2 * quiet.candidate_p50
    assert loaded.reference_p50 > 2 * quiet.reference_p50  # ...while absolute times did


def _order(seed: int, samples: int = 64) -> list[str]:
    first: list[str] = []
    pending: list[str] = []

    def record(name: str) -> Callable[[Any], None]:
        def call(row: Any) -> None:
            pending.append(name)
            if len(pending) == 2:
                first.append(pending[0])
                pending.clear()

        return call

    interleaved_latency(
        record("candidate"), record("reference"), [1], warmup=0, samples=samples, seed=seed
    )
    return first


def test_who_runs_first_is_random_but_fixed_by_the_seed() -> None:
    order = _order(seed=7)
    assert len(order) == 64
    assert 16 < order.count("candidate") < 48  # neither model always runs first
    assert _order(seed=7) == order
    assert _order(seed=8) != order


def test_each_pair_scores_the_same_row_and_rows_cycle() -> None:
    seen: dict[str, list[int]] = {"candidate": [], "reference": []}
    interleaved_latency(
        lambda row: seen["candidate"].append(row),
        lambda row: seen["reference"].append(row),
        [10, 20, 30],
        warmup=2,
        samples=7,
    )
    warmup, timed = [10, 20], [10, 20, 30, 10, 20, 30, 10]
    expected = [*warmup, *timed]
    assert seen["candidate"] == expected and seen["reference"] == expected


def test_no_rows_gives_no_samples_and_the_judge_fails_closed() -> None:
    called: list[Any] = []
    comparison = interleaved_latency(called.append, called.append, [])
    assert called == []
    assert comparison.samples == 0 and comparison.candidate_ms == []
    assert math.isnan(comparison.candidate_p50)
    passed, detail = judge_latency(comparison, max_ms=100, max_ratio=10)
    assert not passed
    assert "could not be measured" in detail


def test_the_ratio_is_the_median_of_paired_ratios_not_a_ratio_of_medians() -> None:
    comparison = LatencyComparison.from_samples([1.0, 2.0, 10.0], [1.0, 1.0, 20.0])
    assert comparison.candidate_p50 / comparison.reference_p50 == 2.0
    assert comparison.ratio_p50 == 1.0  # pairs: 1.0, 2.0, 0.5
    with pytest.raises(ValueError, match="paired"):
        LatencyComparison.from_samples([1.0], [])


def test_percentiles_and_to_dict_keep_the_raw_samples() -> None:
    candidate = [float(v) for v in range(1, 101)]
    comparison = LatencyComparison.from_samples(candidate, [1.0] * 100)
    assert comparison.candidate_p50 == pytest.approx(50.5)
    assert comparison.candidate_p95 == pytest.approx(95.05)
    as_dict = comparison.to_dict()
    assert as_dict["candidate_ms"] == candidate and as_dict["samples"] == 100
    assert as_dict["ratio_p50"] == pytest.approx(50.5)


def _comparison(candidate_ms: float, reference_ms: float) -> LatencyComparison:
    return LatencyComparison.from_samples([candidate_ms] * 5, [reference_ms] * 5)


def test_a_sub_millisecond_model_is_never_refused_on_ratio() -> None:
    passed, detail = judge_latency(_comparison(0.4, 0.1), max_ms=50, max_ratio=1.5)
    assert passed
    assert "4.00x" in detail and "0.40 ms" in detail


def test_the_ratio_refuses_a_slower_model_above_the_floor() -> None:
    passed, detail = judge_latency(_comparison(5.0, 2.0), max_ms=50, max_ratio=1.5)
    assert not passed
    assert "2.50x" in detail and "slower than 1.5x" in detail
    assert judge_latency(_comparison(5.0, 2.0), max_ms=50, max_ratio=3.0)[0]
    assert not judge_latency(_comparison(0.4, 0.1), max_ms=50, max_ratio=1.5, floor_ms=0.2)[0]


def test_the_absolute_limit_applies_even_when_the_reference_is_as_slow() -> None:
    passed, detail = judge_latency(_comparison(60.0, 60.0), max_ms=50, max_ratio=1.5)
    assert not passed
    assert "above the 50 ms limit" in detail and "60.00 ms" in detail
