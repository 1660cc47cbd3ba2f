"""Proving a scorer against its artifact on a whole frame before it is trusted
(:func:`verify_scorer`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from modelops.core.scorer.base import Scorer, ScorerMismatchError

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class ScorerCheck:
    """A scorer against its artifact's ``predict_proba`` on the same frame."""

    kind: str
    rows: int
    max_abs_diff: float
    flips: int  # rows whose decision (score >= threshold) differs
    threshold: float | None
    tolerance: float
    single_rows: int  # rows also scored one by one with score_one
    reason: str | None = None

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance and self.flips == 0

    @property
    def detail(self) -> str:
        at = f" at threshold {self.threshold!r}" if self.threshold is not None else ""
        verdict = "matches" if self.passed else "does NOT match"
        why = f" ({self.reason})" if self.reason else ""
        return (
            f"{self.kind} scorer{why} {verdict} the pipeline on {self.rows} rows: max |diff| "
            f"{self.max_abs_diff:.3g} (tolerance {self.tolerance:g}), {self.flips} decision "
            f"flip(s){at}; {self.single_rows} rows also scored one by one"
        )

    def require(self) -> ScorerCheck:
        """This check, if it passed.

        Raises:
            ScorerMismatchError: the scorer differs from its artifact.
        """
        if not self.passed:
            raise ScorerMismatchError(self.detail)
        return self


def verify_scorer(
    scorer: Scorer,
    model: Any,
    frame: pd.DataFrame,
    feature_names: Sequence[str] | None = None,
    tolerance: float = 1e-9,
    *,
    threshold: float | None = None,
    single_rows: int = 200,
) -> ScorerCheck:
    """Score ``frame`` with the scorer (columns; and the first ``single_rows`` rows one by one)
    and with ``model.predict_proba``; the largest difference and the decision flips.

    Returns the check whether or not it passed; ``.require()`` raises on a mismatch.
    """
    names = list(feature_names if feature_names is not None else scorer.feature_names)
    x = frame[names]
    expected = np.asarray(model.predict_proba(x)[:, 1], dtype=np.float64)
    batch = scorer.score_columns({name: x[name].to_numpy() for name in names})
    diff = np.abs(batch - expected)
    flipped = _flips(batch, expected, threshold)
    single = min(single_rows, len(x))
    if single:
        records = x.head(single).to_dict("records")
        one_by_one = np.array([scorer.score_one(r) for r in records], dtype=np.float64)
        diff[:single] = np.fmax(diff[:single], np.abs(one_by_one - expected[:single]))
        diff[:single][np.isnan(one_by_one)] = np.nan
        flipped[:single] |= _flips(one_by_one, expected[:single], threshold)
    worst = 0.0
    if len(diff):
        worst = math.inf if np.isnan(diff).any() else float(np.max(diff))
    return ScorerCheck(
        kind=scorer.kind,
        rows=len(x),
        max_abs_diff=worst,
        flips=int(np.count_nonzero(flipped)),
        threshold=threshold,
        tolerance=tolerance,
        single_rows=single,
        reason=scorer.reason,
    )


def _flips(
    got: npt.NDArray[np.float64], expected: npt.NDArray[np.float64], threshold: float | None
) -> npt.NDArray[np.bool_]:
    if threshold is None:
        return np.zeros(len(got), dtype=bool)
    return np.asarray((got >= threshold) != (expected >= threshold), dtype=bool)
