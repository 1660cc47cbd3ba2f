"""The scenarios the monitor's estimate must get right, on seeded worlds with a real
scikit-learn model (no I/O): covariate shift (the band covers realised cost in at least 90 % of
120 daily chunks), concept drift (the estimate misses; the maturity check detects it) and a
model trained with class weights (miscalibrated: only the holdout calibration brings realised
cost within the band).

Holdouts of 10,000 rows: the band is the sampling error of the chunk's outcomes given the
calibrated probabilities, not the calibration's own error; with 5,000 holdout rows the isotonic
calibration's error alone put coverage at 88-93 % across seeds.

The world: a lender's applications with three standardised features; P(default | x) is a
fixed logistic function (``-2.6 + 1.1 x0 + 0.7 x1 - 0.5 x2``, about 11 % defaults). Covariate
shift moves the applicants (x0 and x1 drift by up to one standard deviation over the period)
and leaves P(y|x) alone; concept drift changes P(y|x) (x0 stops predicting default, defaults
rise). Costs: a missed default 10, a refused good applicant 1; threshold 0.15.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelops.core import estimated_judgement as ej
from modelops.core.estimation.calibration import Calibration, calibrate, fit_calibration
from modelops.core.estimation.cbpe import ChunkEstimate, estimate_chunk, reference_from_holdout
from modelops.core.metrics import CostModel, classification_metrics

COSTS = CostModel(false_negative=10.0, false_positive=1.0)
THRESHOLD = 0.15
CHUNKS = 120  # daily chunks
ROWS_PER_CHUNK = 600
HOLDOUT_ROWS = 10_000


def _applicants(
    rng: np.random.Generator, n: int, *, shift: float = 0.0, concept: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(0.0, 1.0, size=(n, 3))
    x[:, 0] += shift
    x[:, 1] += 0.5 * shift
    logit = -2.6 + 1.1 * x[:, 0] + 0.7 * x[:, 1] - 0.5 * x[:, 2]
    if concept:
        logit = -1.9 + 0.1 * x[:, 0] + 0.7 * x[:, 1] - 0.5 * x[:, 2]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return x, y


@dataclass(frozen=True)
class Served:
    model: LogisticRegression
    calibration: Calibration
    reference_se: float
    gate_cost: float
    threshold: float

    def scores(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba(x)[:, 1], dtype=np.float64)


def _trained(
    seed: int, *, class_weight: str | None = None, threshold: float = THRESHOLD
) -> tuple[Served, object]:
    """A model fitted on training rows; calibration, ROC-AUC reference and gate-time cost from
    a separate holdout (never the training rows)."""
    rng = np.random.default_rng(seed)
    x_train, y_train = _applicants(rng, 8000)
    model = LogisticRegression(class_weight=class_weight, max_iter=500).fit(x_train, y_train)
    x_hold, y_hold = _applicants(rng, HOLDOUT_ROWS)
    s_hold = np.asarray(model.predict_proba(x_hold)[:, 1], dtype=np.float64)
    calibration = fit_calibration(s_hold, y_hold)
    q = calibrate(calibration, s_hold)
    served = Served(
        model,
        calibration,
        ej.calibration_se(q, s_hold, threshold=threshold, costs=COSTS),
        classification_metrics(y_hold, s_hold, threshold, COSTS)["cost_per_1000"],
        threshold,
    )
    return served, reference_from_holdout(s_hold, y_hold)


def _period(
    served: Served,
    reference: object,
    seed: int,
    *,
    shift: float = 0.0,
    concept: bool = False,
    calibration: Calibration | None = None,
) -> list[tuple[ChunkEstimate, float, np.ndarray, np.ndarray]]:
    """Daily chunks, the shift growing linearly to ``shift``: each chunk's estimate, its
    realised cost, labels and scores."""
    rng = np.random.default_rng(seed)
    out = []
    for day in range(CHUNKS):
        x, y = _applicants(rng, ROWS_PER_CHUNK, shift=shift * day / (CHUNKS - 1), concept=concept)
        s = served.scores(x)
        est = estimate_chunk(
            s,
            calibration=calibration or served.calibration,
            threshold=served.threshold,
            costs=COSTS,
            reference=reference,  # type: ignore[arg-type]
        )
        realised = classification_metrics(y, s, served.threshold, COSTS)["cost_per_1000"]
        out.append((est, realised, y, s))
    return out


def _coverage(chunks: list[tuple[ChunkEstimate, float, np.ndarray, np.ndarray]]) -> float:
    inside = [e.cost_per_1000_low <= r <= e.cost_per_1000_high for e, r, _, _ in chunks]
    return float(np.mean(inside))


def test_covariate_shift_the_band_covers_realised_cost_in_90_percent_of_120_chunks() -> None:
    served, reference = _trained(11)
    chunks = _period(served, reference, 12, shift=1.5)
    # the shift raises defaults and the estimate follows: expected against realised defaults
    expected = np.array([e.expected_positives for e, _, _, _ in chunks])
    realised = np.array([float(c[2].sum()) for c in chunks])
    assert expected[-10:].mean() > 1.5 * expected[:10].mean()
    assert abs(expected[-10:].mean() - realised[-10:].mean()) < 0.1 * realised[-10:].mean()
    assert _coverage(chunks) >= 0.90
    # and over the whole period the estimate holds on the matured labels
    y = np.concatenate([c[2] for c in chunks])
    s = np.concatenate([c[3] for c in chunks])
    check = ej.check_estimate(
        y,
        calibrate(served.calibration, s),
        s,
        threshold=THRESHOLD,
        costs=COSTS,
        cohorts=CHUNKS,
        reference_se=served.reference_se,
    )
    assert not check.significant, check.detail


def test_concept_drift_the_estimate_misses_and_the_maturity_check_detects_it() -> None:
    served, reference = _trained(21)
    chunks = _period(served, reference, 22, concept=True)
    assert _coverage(chunks) < 0.5  # the estimate misses most chunks
    realised = np.mean([r for _, r, _, _ in chunks])
    estimated = np.mean([e.cost_per_1000 for e, _, _, _ in chunks])
    assert realised > estimated * 1.2
    matured = chunks[:30]  # the first month's labels have matured
    y = np.concatenate([c[2] for c in matured])
    s = np.concatenate([c[3] for c in matured])
    check = ej.check_estimate(
        y,
        calibrate(served.calibration, s),
        s,
        threshold=THRESHOLD,
        costs=COSTS,
        cohorts=len(matured),
        reference_se=served.reference_se,
    )
    assert check.significant and check.gap > 0, check.detail
    assert check.cohorts == 30 and check.interval["low"] > 0
    assert "the estimate no longer holds" in check.detail


def test_a_model_trained_with_class_weights_is_brought_within_the_band_by_holdout_calibration() -> (
    None
):
    # balanced class weights inflate every score; its threshold sits where its scores do
    served, reference = _trained(31, class_weight="balanced", threshold=0.5)
    assert served.calibration.method == "isotonic"
    assert served.calibration.ece_calibrated < served.calibration.ece_raw / 2
    raw = Calibration(method="identity", ece_raw=0.0, ece_calibrated=0.0, rows=1, positives=1)
    uncalibrated = _period(served, reference, 32, calibration=raw)
    calibrated = _period(served, reference, 32)
    assert _coverage(uncalibrated) < 0.1  # the raw scores over-state defaults: the band misses
    assert _coverage(calibrated) >= 0.90


@pytest.mark.parametrize("seed", [41, 42, 43])
def test_healthy_periods_raise_no_concept_drift(seed: int) -> None:
    served, reference = _trained(seed)
    chunks = _period(served, reference, seed + 100)
    assert _coverage(chunks) >= 0.90
    y = np.concatenate([c[2] for c in chunks])
    s = np.concatenate([c[3] for c in chunks])
    check = ej.check_estimate(
        y,
        calibrate(served.calibration, s),
        s,
        threshold=THRESHOLD,
        costs=COSTS,
        cohorts=CHUNKS,
        reference_se=served.reference_se,
    )
    assert not check.significant, check.detail
