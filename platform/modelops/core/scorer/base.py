"""The serving scorer's contract (:class:`Scorer`), its kinds and the value checks every
scorer applies to a request."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from modelops.core.errors import DataError, ModelopsError

if TYPE_CHECKING:
    pass

Scores = npt.NDArray[np.float64]


LIGHTGBM = "lightgbm"
LOGISTIC = "logistic"
PIPELINE = "sklearn-pipeline"
KINDS = (LIGHTGBM, LOGISTIC, PIPELINE)
SINGLE_ROW_THREADS = 1


class ScorerMismatchError(ModelopsError):
    """A scorer does not give its artifact's probabilities; it must not serve."""


class Scorer(ABC):
    """Probabilities of the positive class (``predict_proba(...)[:, 1]``) from plain values.

    Attributes:
        kind: ``"lightgbm"`` or ``"logistic"`` (computed natively, no pandas) or
            ``"sklearn-pipeline"`` (the artifact's own ``predict_proba``).
        feature_names: the inputs, in the order the model was trained on; every row or column
            mapping must hold each of them (extra keys are ignored).
        reason: why the scorer fell back to ``"sklearn-pipeline"``; None for native scorers.

    A missing input raises :class:`~modelops.core.errors.DataError` naming it. Scorers hold
    only fitted, read-only state and may be shared between threads.
    """

    kind: str
    feature_names: tuple[str, ...]
    reason: str | None

    @abstractmethod
    def score_one(self, row: Mapping[str, Any]) -> float:
        """The probability for one row: the fastest path, for request serving."""

    @abstractmethod
    def score_columns(self, columns: Mapping[str, Any]) -> Scores:
        """Probabilities for equally long columns (numpy arrays or sequences), for batches."""

    def score_rows(self, rows: Sequence[Mapping[str, Any]]) -> Scores:
        """Probabilities for a batch of rows, in order."""
        columns: dict[str, list[Any]] = {}
        for name in self.feature_names:
            values = []
            for i, row in enumerate(rows):
                try:
                    values.append(row[name])
                except KeyError:
                    raise _missing(name, self.feature_names, f" in row {i}") from None
            columns[name] = values
        return self.score_columns(columns)

    def __repr__(self) -> str:
        why = f", reason={self.reason!r}" if self.reason else ""
        return f"{type(self).__name__}(kind={self.kind!r}, inputs={len(self.feature_names)}{why})"


def _missing(name: str, names: Sequence[str], where: str = "") -> DataError:
    return DataError(f"feature '{name}' is missing{where}; the model needs: {', '.join(names)}")


def _columns(columns: Mapping[str, Any], names: Sequence[str]) -> tuple[dict[str, Any], int]:
    """The named columns and their common length."""
    data = {}
    for name in names:
        try:
            data[name] = columns[name]
        except KeyError:
            raise _missing(name, names, " from the columns") from None
    lengths = {name: len(values) for name, values in data.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"columns differ in length: {lengths}")
    return data, next(iter(lengths.values()), 0)


def _is_nan(value: Any) -> bool:
    """NaN as scikit-learn's encoders and imputers see it (``None`` is a category to them)."""
    return isinstance(value, float | np.floating) and value != value


def _is_na(value: Any) -> bool:
    """Missing as pandas sees it: None, NaN, ``pd.NA``, ``NaT``."""
    return value is None or _is_nan(value) or type(value).__name__ in ("NAType", "NaTType")


def _number(value: Any, name: str) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        if _is_na(value):
            return math.nan
        raise DataError(f"feature '{name}': {value!r} is not a number") from None


def _numbers(values: Any, name: str) -> npt.NDArray[np.float64]:
    """A float64 copy of a column; None and pandas' missing markers become NaN."""
    try:
        return np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        return np.fromiter((_number(v, name) for v in values), dtype=np.float64)
