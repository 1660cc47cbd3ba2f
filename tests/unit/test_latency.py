"""Interleaved latency: real timings of real callables, robust to a busy machine."""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from modelops.core.latency import LatencyComparison, interleaved_latency, judge_latency

ROWS = [1500, 1750, 2000, 2250]


def _sleeps(ms: float) -> Callable[[Any], None]:
    return lambda row: time.sleep(ms / 1000)


def _work(row: int) -> int:
    """Pure-Python work around a call that releases the interpreter lock, like numpy in predict."""
    total = 0
    for i in range(row):
        total += i * i
    time.sleep(0)  # lets a busy thread in, as native code inside a real model's predict does
    for i in range(row):
        total -= i
    return total


def test_a_model_that_takes_twice_as_long_has_a_ratio_near_two() -> None:
    comparison = interleaved_latency(_sleeps(4), _sleeps(2), ROWS, warmup=2, samples=30)
    assert comparison.samples == 30
    assert len(comparison.candidate_ms) == len(comparison.reference_ms) == 30
    assert 1.5 < comparison.ratio_p50 < 2.5
    assert comparison.candidate_p50 >= 4.0 and comparison.reference_p50 >= 2.0
    assert comparison.candidate_p95 >= comparison.candidate_p50
    passed, detail = judge_latency(comparison, max_ms=50, max_ratio=1.5)
    assert not passed
    assert "slower than 1.5x" in detail


@contextmanager
def _busy_machine() -> Iterator[None]:
    """Two threads burning CPU, taking the interpreter whenever the timed code lets go of it."""
    stop = threading.Event()

    def burn() -> None:
        spins = 0
        while not stop.is_set():
            spins += 1

    previous = sys.getswitchinterval()
    burners = [threading.Thread(target=burn, daemon=True) for _ in range(2)]
    sys.setswitchinterval(0.0005)
    for burner in burners:
        burner.start()
    try:
        yield
    finally:
        stop.set()
        for burner in burners:
            burner.join()
        sys.setswitchinterval(previous)


def test_load_inflates_absolute_times_but_not_the_paired_ratio() -> None:
    quiet = interleaved_latency(_work, _work, ROWS, warmup=3, samples=60)
    with _busy_machine():
        loaded = interleaved_latency(_work, _work, ROWS, warmup=3, samples=60)

    assert 0.5 < quiet.ratio_p50 < 2.0
    assert 0.5 < loaded.ratio_p50 < 2.0  # the paired ratio did not move...
    passed, _ = judge_latency(loaded, max_ms=1000, max_ratio=2.0, floor_ms=0.0)
    assert passed
    if not loaded.candidate_p50 > 2 * quiet.candidate_p50:
        pytest.skip(
            f"the machine was already busy (unloaded median {quiet.candidate_p50:.3f} ms): the "
            "burner threads could not slow it further, so the ratio was not put under load"
        )
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
