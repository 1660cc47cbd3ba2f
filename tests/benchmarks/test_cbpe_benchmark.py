"""CBPE on 1,000,000 logged predictions, next to a bare numpy pass computing the same sums.

Run with ``make bench`` or alone::

    PYTHONPATH=platform .venv/bin/python -m pytest tests/benchmarks/test_cbpe_benchmark.py \\
        -s -p no:cacheprovider

Data (seeded, generated here): 1,000,000 scores of a miscalibrated model (an over-confident
logistic of a latent risk, rounded to 4 decimals so that scores tie, as a served model's
float32 output does) logged at random times over 30 days (``datetime64[ns]``, unsorted, as a
prediction log reads back); a 20,000-row labelled holdout for the isotonic calibration and the
ROC-AUC reference (fitted before timing: the monitor fits them once per version).

Measured (best of 3 runs, wall time):

a. ``estimate_chunks(scores, timestamps, period="1D", ...)``: the production call (timestamps
   read through pandas, rows put in time order, 30 daily chunks, each sorted by score,
   calibrated, its expected confusion counts, variances, ROC-AUC and bands assembled into
   typed records);
b. the floor: the same sums in bare numpy with nothing else: rows in time order, per day the
   sorted scores, ``np.interp`` through the same knots, the flagged/unflagged sums of ``q`` and
   ``q (1 - q)``, the tie-group sums and the trapezoid;
c. the ratio (a)/(b), and (a)'s peak of traced allocations (tracemalloc: Python objects and
   numpy buffers) beyond its inputs.

Asserted: (a) <= 5 s, (a) <= 2x (b), peak <= 1 GiB; and (a)'s numbers equal (b)'s, so the floor
computes the same thing.
"""

from __future__ import annotations

import itertools
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from modelops.core.estimation import (
    calibrate,
    estimate_chunks,
    fit_calibration,
    reference_from_holdout,
)
from modelops.core.metrics import CostModel

ROWS = 1_000_000
DAYS = 30
THRESHOLD = 0.5
COSTS = CostModel(false_negative=10.0, false_positive=1.0)
SECONDS_TARGET, RATIO_TARGET, PEAK_TARGET = 5.0, 2.0, 1 << 30
DAY_NS = 86_400 * 10**9


def _scores_and_labels(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    risk = rng.normal(size=n)
    p = 1.0 / (1.0 + np.exp(-(1.1 * risk - 2.0)))
    y = (rng.random(n) < p).astype(np.int64)
    score = np.round(1.0 / (1.0 + np.exp(-(1.8 * risk - 1.2))), 4)
    return score, y


def _floor(
    scores: np.ndarray, ns: np.ndarray, x: np.ndarray, y: np.ndarray
) -> list[tuple[float, ...]]:
    order = np.argsort(ns, kind="stable")
    s, day = scores[order], ns[order] // DAY_NS
    edges = np.flatnonzero(np.r_[True, day[1:] != day[:-1], True])
    out = []
    for a, b in itertools.pairwise(edges.tolist()):
        c = np.sort(s[a:b])
        q = np.interp(c, x, y)
        v = q * (1.0 - q)
        below = int(np.searchsorted(c, THRESHOLD, side="left"))
        starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
        pos, neg = np.add.reduceat(q, starts), np.add.reduceat(1.0 - q, starts)
        auc = float(pos @ (np.cumsum(neg) - 0.5 * neg) / (pos.sum() * neg.sum()))
        out.append(
            (float(q[:below].sum()), float(q[below:].sum()), float(v[:below].sum()),
             float(v[below:].sum()), auc, b - a, b - a - below)
        )  # fmt: skip
    return out


def _best(fn: Callable[[], Any], runs: int = 3) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def test_cbpe_on_a_million_predictions() -> None:
    rng = np.random.default_rng(19)
    holdout_scores, holdout_labels = _scores_and_labels(rng, 20_000)
    calibration = fit_calibration(holdout_scores, holdout_labels)
    assert calibration.method == "isotonic"
    reference = reference_from_holdout(holdout_scores, holdout_labels)
    scores, _ = _scores_and_labels(rng, ROWS)
    start = np.datetime64("2026-11-01T00:00:00", "ns").astype(np.int64)
    ns = start + rng.integers(0, DAYS * DAY_NS, size=ROWS)
    timestamps = ns.astype("datetime64[ns]")
    x, y = np.asarray(calibration.x), np.asarray(calibration.y)

    def production() -> list[Any]:
        return estimate_chunks(
            scores, timestamps, period="1D", calibration=calibration, threshold=THRESHOLD,
            costs=COSTS, reference=reference,
        )  # fmt: skip

    estimated_s, chunks = _best(production)
    floor_s, sums = _best(lambda: _floor(scores, ns, x, y))
    tracemalloc.start()
    production()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    ratio = estimated_s / floor_s
    print(
        f"\nCBPE on {ROWS:,} predictions, {len(chunks)} daily chunks: {estimated_s:.3f} s "
        f"(target {SECONDS_TARGET} s); bare numpy floor {floor_s:.3f} s; ratio {ratio:.2f}x "
        f"(target {RATIO_TARGET}x); peak traced {peak / 2**20:.0f} MiB "
        f"(target {PEAK_TARGET / 2**30:.0f} GiB); calibration {calibration.method} with "
        f"{len(calibration.x)} knots"
    )
    # the floor computes the same numbers
    assert len(chunks) == len(sums) == DAYS
    for e, (e_fn, e_tp, var_fn, var_fp, auc, rows, flagged) in zip(chunks, sums, strict=True):
        assert (e.rows, e.alert_rate) == (rows, flagged / rows)
        assert abs(e.expected_positives - (e_fn + e_tp)) < 1e-6
        cost = 1000.0 * (e_fn * COSTS.false_negative + (flagged - e_tp) * COSTS.false_positive)
        assert abs(e.cost_per_1000 - cost / rows) < 1e-9
        se = 1000.0 / rows * np.sqrt(100.0 * var_fn + var_fp)  # costs 10 and 1
        assert abs(e.cost_per_1000_high - (cost / rows + 1.96 * se)) < 1e-9
        assert e.roc_auc is not None and abs(e.roc_auc - auc) < 1e-12
    assert np.allclose(
        calibrate(calibration, scores[:1000]), np.interp(scores[:1000], x, y), rtol=0, atol=0
    )
    assert estimated_s <= SECONDS_TARGET
    assert ratio <= RATIO_TARGET
    assert peak <= PEAK_TARGET
