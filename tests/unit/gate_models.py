"""Real, picklable classifiers with designed behaviour, for gate tests.

They wrap a trained pipeline and change its scores deterministically (row-hash noise), so the
gate sees models that are worse overall, blind in one segment, or broken.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def _row_uniform(frame: pd.DataFrame, seed: int) -> np.ndarray:
    hashed = pd.util.hash_pandas_object(frame, index=False, hash_key=f"{seed:016d}")
    return (hashed.to_numpy() % 1_000_003) / 1_000_003


class NoisyScores:
    """The wrapped model's scores blended with per-row noise: same ranking idea, less skill."""

    def __init__(self, model: Any, noise: float, seed: int = 0) -> None:
        self.model, self.noise, self.seed = model, noise, seed

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        p = self.model.predict_proba(frame)[:, 1]
        blended = (1 - self.noise) * p + self.noise * _row_uniform(frame, self.seed) * p.mean() * 2
        return np.column_stack([1 - blended, blended])


class SegmentBlind:
    """The wrapped model everywhere except one segment, where it scores every row the same."""

    def __init__(self, model: Any, column: str, value: str) -> None:
        self.model, self.column, self.value = model, column, value

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        p = self.model.predict_proba(frame)[:, 1].copy()
        blind = (frame[self.column].astype(str) == self.value).to_numpy()
        p[blind] = p.mean()
        return np.column_stack([1 - p, p])


class BrokenModel:
    """Loads fine, fails when asked to predict (a missing native library, a bad pickle...)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        if len(frame) > 5:
            raise RuntimeError("native scoring library crashed")
        return self.model.predict_proba(frame)


class GoodInOneSegment:
    """``good`` in one segment and ``poor`` everywhere else: a reference that is hard to beat
    in that segment only."""

    def __init__(self, good: Any, poor: Any, column: str, value: str) -> None:
        self.good, self.poor, self.column, self.value = good, poor, column, value

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        inside = (frame[self.column].astype(str) == self.value).to_numpy()
        p = self.poor.predict_proba(frame)[:, 1].copy()
        if inside.any():
            p[inside] = self.good.predict_proba(frame[inside])[:, 1]
        return np.column_stack([1 - p, p])
