"""Prediction latency measured so that a loaded machine cannot flip the gate's verdict.

Timing the candidate, then the reference, compares two different moments of the machine: a
backup job starting halfway through makes whichever model ran second look slow. Here the two
models are timed in interleaved pairs on the same row, and the verdict rests on the median of
the per-pair ratios, which both calls of a pair share the load of.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any


def _percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class LatencyComparison:
    """Per-row latency of a candidate and a reference, timed in interleaved pairs.

    ``candidate_ms[i]`` and ``reference_ms[i]`` are the two calls of pair ``i`` (same row,
    back to back). ``ratio_p50`` is the median over pairs of ``candidate_ms[i] /
    reference_ms[i]``: both calls of a pair run within microseconds of each other and see the
    same machine load, so load scales both and cancels in their ratio, whereas comparing two
    separately taken medians compares two different moments of the machine. A load burst that
    hits only some pairs moves the median ratio little, and randomising which call of a pair runs
    first keeps any order effect (caches, frequency scaling) from favouring one model.
    """

    candidate_ms: list[float]
    reference_ms: list[float]
    candidate_p50: float
    candidate_p95: float
    reference_p50: float
    reference_p95: float
    ratio_p50: float
    samples: int

    @classmethod
    def from_samples(
        cls, candidate_ms: Sequence[float], reference_ms: Sequence[float]
    ) -> LatencyComparison:
        """Summaries from paired samples (``candidate_ms[i]`` timed next to ``reference_ms[i]``)."""
        if len(candidate_ms) != len(reference_ms):
            raise ValueError("candidate and reference samples must be paired")
        ratios = [c / max(r, 1e-6) for c, r in zip(candidate_ms, reference_ms, strict=True)]
        return cls(
            candidate_ms=list(candidate_ms),
            reference_ms=list(reference_ms),
            candidate_p50=_percentile(candidate_ms, 50),
            candidate_p95=_percentile(candidate_ms, 95),
            reference_p50=_percentile(reference_ms, 50),
            reference_p95=_percentile(reference_ms, 95),
            ratio_p50=_percentile(ratios, 50),
            samples=len(candidate_ms),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def interleaved_latency(
    score_candidate: Callable[[Any], Any],
    score_reference: Callable[[Any], Any],
    rows: Sequence[Any],
    *,
    warmup: int = 20,
    samples: int = 200,
    seed: int = 0,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> LatencyComparison:
    """Time single-row calls of two scorers in interleaved pairs on the same rows.

    ``warmup`` pairs run untimed first (lazy imports, caches, JIT). Then ``samples`` pairs each
    score ``rows[i % len(rows)]`` with both callables back to back, in an order drawn from a
    ``random.Random(seed)``: neither model always runs first, and the same seed gives the same
    order. Each call is timed with ``clock`` (integer nanoseconds; ``time.perf_counter_ns`` unless
    a test passes a clock of its own). See :class:`LatencyComparison` for why the paired ratio is
    robust to machine load. No rows gives zero samples (NaN summaries), which
    :func:`judge_latency` fails. Exceptions from the scorers propagate.
    """
    if not rows or samples <= 0:
        return LatencyComparison.from_samples([], [])
    for i in range(max(warmup, 0)):
        row = rows[i % len(rows)]
        score_candidate(row)
        score_reference(row)

    order = random.Random(seed)
    candidate_ns: list[int] = []
    reference_ns: list[int] = []
    for i in range(samples):
        row = rows[i % len(rows)]
        if order.random() < 0.5:
            start = clock()
            score_candidate(row)
            middle = clock()
            score_reference(row)
            end = clock()
            candidate_ns.append(middle - start)
            reference_ns.append(end - middle)
        else:
            start = clock()
            score_reference(row)
            middle = clock()
            score_candidate(row)
            end = clock()
            reference_ns.append(middle - start)
            candidate_ns.append(end - middle)
    return LatencyComparison.from_samples(
        [ns / 1e6 for ns in candidate_ns], [ns / 1e6 for ns in reference_ns]
    )


def judge_latency(
    comparison: LatencyComparison,
    *,
    max_ms: float,
    max_ratio: float,
    floor_ms: float = 1.0,
) -> tuple[bool, str]:
    """(passed, one-sentence detail) for the latency rule.

    Passes when the candidate's median is at most ``max_ms`` and either the paired median ratio
    is at most ``max_ratio`` or the candidate's median is at most ``floor_ms`` (a sub-millisecond
    model is never refused for being relatively slower). No samples, or a summary that is not a
    number, fails closed.
    """
    c50, c95, r50 = comparison.candidate_p50, comparison.candidate_p95, comparison.reference_p50
    ratio = comparison.ratio_p50
    if comparison.samples <= 0 or not (math.isfinite(c50) and math.isfinite(ratio)):
        return False, "latency could not be measured: no rows were timed."
    measured = (
        f"median {c50:.2f} ms per row (p95 {c95:.2f}) vs {r50:.2f} ms for the reference, "
        f"{ratio:.2f}x over {comparison.samples} interleaved pairs"
    )
    limits = f"limits {max_ms:g} ms and {max_ratio:g}x, ratio waived under {floor_ms:g} ms"
    if c50 > max_ms:
        return False, f"{measured} - above the {max_ms:g} ms limit ({limits})."
    if ratio > max_ratio and c50 > floor_ms:
        return False, f"{measured} - slower than {max_ratio:g}x the reference ({limits})."
    return True, f"{measured} ({limits})."
