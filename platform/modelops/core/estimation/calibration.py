"""Score calibration for performance estimation: isotonic regression, kept only when it helps.

CBPE reads a model's score as ``P(y=1 | x)``. A score that is not calibrated (a model trained
with class weights, a gradient-boosted model over-confident in its tails) turns into a biased
estimate, so the scores are first mapped through a monotone calibration fitted on **holdout rows
only**: rows the model never trained on, with their labels. Calibrating on training rows learns
the model's over-fit and under-estimated cost by 20 % in a trial; choosing the rows is the
caller's job, this module cannot tell.

Whether to keep the isotonic map is decided as nannyml's CBPE decides it
(``nannyml.calibration.needs_calibration``): ten stratified shuffle splits of the holdout
(10 % held out each, seed 42); on each, isotonic regression is fitted on the 90 % and applied to
the 10 %; the held-out rows of all splits are pooled and the expected calibration error (ECE) of
the raw and of the calibrated scores compared on them. Isotonic is kept when it lowers the
cross-validated ECE; otherwise the identity is used. The ECE is the platform's
(:func:`modelops.core.metrics.expected_calibration_error`: ``bins`` equal-count score bins, the
weighted mean of ``|mean score - positive rate|``), which is also nannyml's binning.

The map kept is the isotonic regression fitted on all holdout rows, stored as its knots
(``x`` ascending, ``y`` non-decreasing in [0, 1]); :func:`calibrate` applies it as
scikit-learn's ``IsotonicRegression(out_of_bounds="clip").predict`` does: linear interpolation
between knots, constant beyond the ends. Pure numpy at apply time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import numpy as np

CV_SPLITS = 10
CV_TEST_SHARE = 0.1
CV_SEED = 42


class Calibration(BaseModel):
    """A monotone map from raw score to calibrated ``P(y=1 | score)``, fitted on holdout rows.

    ``method="identity"``: scores are used as they are (``x``/``y`` empty). ``ece_raw`` and
    ``ece_calibrated`` are the cross-validated ECEs the choice was made on (equal when the
    holdout held a single class and nothing could be fitted).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["isotonic", "identity"]
    x: list[float] = Field(default_factory=list)
    y: list[float] = Field(default_factory=list)
    ece_raw: float
    ece_calibrated: float
    rows: int = Field(ge=0)
    positives: int = Field(ge=0)


def _checked(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"scores {s.shape} and labels {y.shape} must be 1-d of equal length")
    if len(s) == 0:
        raise ValueError("no holdout rows to calibrate on")
    if not np.isfinite(s).all() or s.min() < 0 or s.max() > 1:
        raise ValueError("scores must be finite probabilities in [0, 1]")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    return s, y.astype(np.int64)


def _isotonic(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0, increasing=True)
    model.fit(scores, labels)
    return model.X_thresholds_, model.y_thresholds_


def _apply(x: np.ndarray, y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    import numpy as np

    if len(x) == 1:  # a constant fit
        return np.full(scores.shape, float(y[0]))
    return np.interp(scores, x, y)


def _ece(labels: np.ndarray, scores: np.ndarray, bins: int) -> float:
    from modelops.core.metrics import expected_calibration_error

    return expected_calibration_error(labels, scores, bins)


def fit_calibration(scores: Any, labels: Any, *, bins: int = 10) -> Calibration:
    """Fit the calibration on **holdout rows only** (the caller's job: never training rows).

    Isotonic regression is kept when it lowers the cross-validated expected calibration error
    (see the module docstring: ten stratified 90/10 shuffle splits, seed 42, ECE over ``bins``
    equal-count bins of the pooled held-out rows); otherwise the identity. A holdout with a
    single class, or too few rows of a class for the splits, cannot be checked: identity, with
    both ECEs the raw one. Raises ValueError for scores outside [0, 1] or labels other than 0/1.
    """
    import numpy as np

    s, y = _checked(scores, labels)
    n, positives = len(s), int(y.sum())
    raw = _ece(y, s, bins)
    minority = min(positives, n - positives)
    if minority < 2 or round(n * CV_TEST_SHARE) < 2:
        return Calibration(
            method="identity", ece_raw=raw, ece_calibrated=raw, rows=n, positives=positives
        )
    from sklearn.model_selection import StratifiedShuffleSplit

    splits = StratifiedShuffleSplit(
        n_splits=CV_SPLITS, test_size=CV_TEST_SHARE, random_state=CV_SEED
    )
    held_y, held_raw, held_cal = [], [], []
    for train, test in splits.split(s, y):
        kx, ky = _isotonic(s[train], y[train])
        held_y.append(y[test])
        held_raw.append(s[test])
        held_cal.append(_apply(kx, ky, s[test]))
    pooled_y = np.concatenate(held_y)
    ece_raw = _ece(pooled_y, np.concatenate(held_raw), bins)
    ece_cal = _ece(pooled_y, np.concatenate(held_cal), bins)
    if not ece_cal < ece_raw:
        return Calibration(
            method="identity", ece_raw=ece_raw, ece_calibrated=ece_cal, rows=n, positives=positives
        )
    kx, ky = _isotonic(s, y)
    return Calibration(
        method="isotonic",
        x=[float(v) for v in kx],
        y=[float(v) for v in ky],
        ece_raw=ece_raw,
        ece_calibrated=ece_cal,
        rows=n,
        positives=positives,
    )


def calibrate(calibration: Calibration, scores: Any) -> np.ndarray:
    """``q``: the calibrated ``P(y=1 | score)`` of each score (float64, in [0, 1]).

    Identity returns the scores (as float64); isotonic interpolates linearly between the knots
    and clips beyond them. Raises ValueError for non-finite scores.
    """
    import numpy as np

    s = np.asarray(scores, dtype=np.float64)
    if s.size and not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    if calibration.method == "identity":
        return s
    return _apply(np.asarray(calibration.x), np.asarray(calibration.y), s)
