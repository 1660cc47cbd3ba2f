"""The arithmetic a native scorer replays: category codes, one-hot positions, imputed and scaled
numbers, the LightGBM booster or the logistic dot product, and the pipeline fallback."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from modelops.core.errors import DataError
from modelops.core.scorer.base import (
    LIGHTGBM,
    LOGISTIC,
    PIPELINE,
    SINGLE_ROW_THREADS,
    Scorer,
    Scores,
    _columns,
    _is_na,
    _is_nan,
    _missing,
    _number,
    _numbers,
)

if TYPE_CHECKING:
    pass


_NO_FILL = object()


@dataclass(frozen=True)
class _Categories:
    """What one categorical input goes through before its encoder looks it up."""

    cast: bool  # the feature step makes it a string, a missing one ``unknown``
    unknown: str
    fill: Any  # the imputer's value for NaN, or _NO_FILL
    index: Mapping[Any, int]  # fitted category (NaN excepted) → position in ``categories_``
    nan_index: int | None  # position of NaN in ``categories_``, if it was seen in training

    def position(self, value: Any) -> int | None:
        """The value's position in ``categories_`` after the feature step and the imputer;
        None when it is not a fitted category (NaN is one only if training had NaN)."""
        if self.cast:
            if _is_na(value):
                value = self.unknown
            elif not isinstance(value, str):
                value = str(value)  # what pandas' astype("string") gives for a scalar
        if _is_nan(value):
            if self.fill is _NO_FILL:
                return self.nan_index
            value = self.fill
        try:
            return self.index.get(value)
        except TypeError:  # unhashable: no fitted category
            return None


@dataclass(frozen=True)
class _Ordinal:
    """One input → one ``OrdinalEncoder`` code."""

    source: int
    column: int
    categories: _Categories
    missing_code: float  # ``encoded_missing_value`` when NaN was a fitted category
    unknown_code: float | None  # ``unknown_value``; None: unknown categories are errors

    def code(self, value: Any, name: str) -> float:
        position = self.categories.position(value)
        if position is not None:
            if position == self.categories.nan_index:
                return self.missing_code
            return float(position)
        if self.unknown_code is None:
            raise DataError(f"feature '{name}': category {value!r} was not seen in training")
        return self.unknown_code

    def put(self, vector: list[float], value: Any, name: str) -> None:
        vector[self.column] = self.code(value, name)

    def put_column(self, matrix: npt.NDArray[np.float64], values: Any, name: str) -> None:
        seen: dict[Any, float] = {}
        codes = np.empty(len(matrix), dtype=np.float64)
        for i, value in enumerate(values):
            try:
                codes[i] = seen[value]
            except (KeyError, TypeError):
                codes[i] = self.code(value, name)
                if isinstance(value, str):
                    seen[value] = codes[i]
        matrix[:, self.column] = codes


@dataclass(frozen=True)
class _OneHot:
    """One input → a block of ``OneHotEncoder`` columns; an unknown category sets none."""

    source: int
    column: int  # first column of the block
    categories: _Categories
    ignore_unknown: bool

    def offset(self, value: Any, name: str) -> int | None:
        position = self.categories.position(value)
        if position is None and not self.ignore_unknown:
            raise DataError(f"feature '{name}': category {value!r} was not seen in training")
        return position

    def put(self, vector: list[float], value: Any, name: str) -> None:
        position = self.offset(value, name)
        if position is not None:
            vector[self.column + position] = 1.0

    def put_column(self, matrix: npt.NDArray[np.float64], values: Any, name: str) -> None:
        seen: dict[str, int] = {}
        positions = np.empty(len(matrix), dtype=np.int64)
        for i, value in enumerate(values):
            if isinstance(value, str) and value in seen:
                positions[i] = seen[value]
                continue
            position = self.offset(value, name)
            positions[i] = -1 if position is None else position
            if isinstance(value, str):
                seen[value] = int(positions[i])
        rows = np.flatnonzero(positions >= 0)
        matrix[rows, self.column + positions[rows]] = 1.0


@dataclass(frozen=True)
class _Number:
    """One numeric input: clipped (feature step), NaN filled (imputer), standardised (scaler)."""

    source: int
    column: int
    lower: float | None = None
    upper: float | None = None
    fill: float | None = None
    mean: float | None = None
    scale: float | None = None

    def value(self, value: Any, name: str) -> float:
        x = _number(value, name)
        if self.lower is not None and x < self.lower:
            x = self.lower
        if self.upper is not None and x > self.upper:
            x = self.upper
        if self.fill is not None and x != x:
            x = self.fill
        if self.mean is not None:
            x = x - self.mean
        if self.scale is not None:
            x = x / self.scale
        return x

    def put(self, vector: list[float], value: Any, name: str) -> None:
        vector[self.column] = self.value(value, name)

    def put_column(self, matrix: npt.NDArray[np.float64], values: Any, name: str) -> None:
        x = _numbers(values, name)
        if x.shape != (len(matrix),):
            raise DataError(f"feature '{name}': expected {len(matrix)} values, got {x.shape}")
        if self.lower is not None:
            np.maximum(x, self.lower, out=x)  # NaN stays NaN, as in pandas' clip
        if self.upper is not None:
            np.minimum(x, self.upper, out=x)
        if self.fill is not None:
            x[np.isnan(x)] = self.fill
        if self.mean is not None:
            x -= self.mean
        if self.scale is not None:
            x /= self.scale
        matrix[:, self.column] = x


_Block = _Ordinal | _OneHot | _Number


class _Booster:
    """LightGBM: the booster's own prediction (best iteration, probability) of the matrix."""

    kind = LIGHTGBM

    def __init__(self, booster: Any) -> None:
        self.booster = booster

    def predict(self, matrix: npt.NDArray[np.float64]) -> Scores:
        if len(matrix) == 1:
            # One thread for one row: the parameter costs a few µs to parse, but OpenMP's
            # barrier on a busy machine costs milliseconds (median 24 ms measured with two
            # threads and a load of 7 on 2 cores).
            out = self.booster.predict(matrix, num_threads=SINGLE_ROW_THREADS)
        else:
            out = self.booster.predict(matrix)
        return np.asarray(out, dtype=np.float64)


class _Linear:
    """Logistic regression: ``expit(x · coef + intercept)``, as scikit-learn computes it."""

    kind = LOGISTIC

    def __init__(self, coef: npt.NDArray[np.float64], intercept: float) -> None:
        self.coef = coef
        self.intercept = intercept

    def predict(self, matrix: npt.NDArray[np.float64]) -> Scores:
        z = matrix @ self.coef + self.intercept
        with np.errstate(over="ignore"):  # exp(710+) is inf: the probability is 0
            return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


class _NativeScorer(Scorer):
    """The artifact's arithmetic on a float64 matrix built from plain values."""

    reason = None

    def __init__(
        self,
        feature_names: Sequence[str],
        blocks: Sequence[_Block],
        width: int,
        final: _Booster | _Linear,
    ) -> None:
        self.feature_names = tuple(feature_names)
        self.kind = final.kind
        self._blocks = tuple(blocks)
        self._width = width
        self._final = final
        # one (input name, block) pair per block, looked up once per row
        self._plan = tuple((self.feature_names[b.source], b) for b in self._blocks)
        used = {name for name, _ in self._plan}
        self._required = tuple(name for name in self.feature_names if name not in used)

    @property
    def width(self) -> int:
        """Columns of the matrix the classifier reads."""
        return self._width

    def _check_present(self, has: Any, where: str) -> None:
        # inputs the classifier ignores are still required: the pipeline selects every one
        for name in self._required:
            if not has(name):
                raise _missing(name, self.feature_names, where)

    def score_one(self, row: Mapping[str, Any]) -> float:
        vector = [0.0] * self._width
        for name, block in self._plan:
            try:
                value = row[name]
            except KeyError:
                raise _missing(name, self.feature_names, " from the row") from None
            block.put(vector, value, name)
        if self._required:
            self._check_present(row.__contains__, " from the row")
        return float(self._final.predict(np.array([vector], dtype=np.float64))[0])

    def score_columns(self, columns: Mapping[str, Any]) -> Scores:
        data, rows = _columns(columns, self.feature_names)
        if rows == 0:
            return np.empty(0, dtype=np.float64)
        matrix = np.zeros((rows, self._width), dtype=np.float64)
        for name, block in self._plan:
            block.put_column(matrix, data[name], name)
        return self._final.predict(matrix)


class _PipelineScorer(Scorer):
    """The artifact itself on a pandas frame: what cannot be mirrored is still scored right."""

    kind = PIPELINE

    def __init__(self, model: Any, feature_names: Sequence[str], reason: str) -> None:
        self.model = model
        self.feature_names = tuple(feature_names)
        self.reason = reason

    def score_columns(self, columns: Mapping[str, Any]) -> Scores:
        import pandas as pd

        data, _ = _columns(columns, self.feature_names)
        frame = pd.DataFrame({name: list(values) for name, values in data.items()})
        return np.asarray(self.model.predict_proba(frame)[:, 1], dtype=np.float64)

    def score_one(self, row: Mapping[str, Any]) -> float:
        values = {}
        for name in self.feature_names:
            try:
                values[name] = [row[name]]
            except KeyError:
                raise _missing(name, self.feature_names, " from the row") from None
        return float(self.score_columns(values)[0])
