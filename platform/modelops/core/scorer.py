"""Serving without pandas: a registered artifact's arithmetic, replayed on plain values.

Every registered version is ``Pipeline([("build_features", FunctionTransformer(step)),
("model", model)])`` (see :func:`modelops.core.modeling.with_feature_step`). Scoring one request
through it builds two or three pandas frames, which costs far more than the trees or the dot
product. :func:`build_scorer` reads the fitted objects once and returns a :class:`Scorer` that
takes the feature service's values as they come (``str`` for categories, ``float``/``int``/
``None``/NaN for numbers) and computes the same probabilities with numpy alone:

- the platform's :class:`~modelops.core.features.FeatureStep`: categories as strings, a missing
  one becomes ``"unknown"``; numbers clipped;
- the ``ColumnTransformer``: ``OrdinalEncoder`` codes (unknown and missing values mapped exactly
  as the encoder maps them), ``OneHotEncoder`` positions, ``SimpleImputer`` fill values,
  ``StandardScaler`` centring and scaling, ``"passthrough"``; in the transformer's column order;
- the classifier: ``LGBMClassifier`` through ``Booster.predict`` on a float64 matrix (its best
  iteration, probabilities), or ``LogisticRegression`` as ``expit(x · coef + intercept)``.

Anything else (a project's own ``build_features``, another model type, an encoder option not
mirrored here) gives a scorer of kind ``"sklearn-pipeline"`` that calls the artifact's
``predict_proba`` on a one-row frame and says why in :attr:`Scorer.reason`: slower, never wrong.
:func:`verify_scorer` proves a scorer against its artifact on a whole frame before it is trusted.

Only :func:`verify_scorer` and the fallback scorer import pandas; scikit-learn and LightGBM are
imported inside :func:`build_scorer`, to recognise the fitted objects.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from modelops.core.errors import DataError, ModelopsError
from modelops.core.features import UNKNOWN_CATEGORY, FeatureStep

if TYPE_CHECKING:
    import pandas as pd

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


class _Unsupported(Exception):
    """The artifact holds something the native scorer does not mirror; the message says what."""


def build_scorer(model: Any, feature_names: Sequence[str] | None = None) -> Scorer:
    """The fastest scorer that gives exactly ``model.predict_proba(frame)[:, 1]``.

    Args:
        model: a fitted artifact, normally from :func:`~modelops.core.modeling.with_feature_step`.
        feature_names: the model's inputs; by default the ``feature_names`` its feature step
            was given (or the pipeline's ``feature_names_in_``).

    Raises:
        DataError: the inputs cannot be told from the artifact and were not given.
    """
    names = _feature_names(model, feature_names)
    try:
        step, inner = _feature_step(model)
        return _native(step, inner, names)
    except _Unsupported as exc:
        return _PipelineScorer(model, names, str(exc))


def _feature_names(model: Any, given: Sequence[str] | None) -> list[str]:
    """The artifact's own inputs (its feature step's ``feature_names``), else ``given``."""
    steps = getattr(model, "steps", None) or [(None, None)]
    kw_args = getattr(steps[0][1], "kw_args", None) or {}
    names = kw_args.get("feature_names")
    if names is None:
        names = given if given is not None else getattr(model, "feature_names_in_", None)
    if names is None:
        raise DataError(f"cannot tell the inputs of a {type(model).__name__}: pass feature_names")
    names = [str(n) for n in names]
    if given is not None and list(given) != names:
        raise DataError(
            f"feature names {list(given)} differ from the artifact's own inputs {names}"
        )
    return names


def _feature_step(model: Any) -> tuple[Any, Any]:
    """(the platform's feature step, the fitted model after it) of a with_feature_step artifact."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    steps = model.steps if isinstance(model, Pipeline) else []
    if len(steps) != 2 or not isinstance(steps[0][1], FunctionTransformer):
        raise _Unsupported(
            f"{type(model).__name__} is not a with_feature_step pipeline (build_features, model)"
        )
    transformer, inner = steps[0][1], steps[1][1]
    if transformer.validate or set(transformer.kw_args or {}) != {"feature_names"}:
        raise _Unsupported("the feature step is called with options this scorer does not mirror")
    func = transformer.func
    differs = _platform_step_differs(func)
    if differs:
        raise _Unsupported(differs)
    return func, inner


def _platform_step_differs(func: Any) -> str | None:
    """Why ``func`` is not this platform's FeatureStep; None when it is.

    Artifacts carry the class by value, so a loaded one is a copy of the class it was trained
    with. It is mirrored only if its code is exactly the code this scorer mirrors; an artifact
    from a platform whose FeatureStep behaved differently is scored by its own pipeline.
    """
    if isinstance(func, FeatureStep):
        return None
    cls = type(func)
    if cls.__name__ != FeatureStep.__name__ or cls.__module__ != FeatureStep.__module__:
        what = getattr(func, "__qualname__", None) or cls.__qualname__
        where = getattr(func, "__module__", None) or cls.__module__
        return (
            f"custom build_features ({where}.{what}): arbitrary pandas code is scored by the "
            "pipeline itself"
        )
    ours = FeatureStep.__call__.__code__
    theirs = getattr(vars(cls).get("__call__"), "__code__", None)
    same_code = theirs is not None and (theirs.co_code, theirs.co_consts, theirs.co_names) == (
        ours.co_code,
        ours.co_consts,
        ours.co_names,
    )
    fields = set(getattr(cls, "__dataclass_fields__", {}))
    if not same_code or fields != set(FeatureStep.__dataclass_fields__):
        return (
            "the artifact's FeatureStep is not the code this scorer mirrors (trained with "
            "another platform version); it is scored by the pipeline itself"
        )
    if _unknown_category(func) is None:
        return "the artifact's FeatureStep has no UNKNOWN_CATEGORY"
    return None


def _unknown_category(step: Any) -> str | None:
    """The value the step gives a missing category (from the artifact's own copy)."""
    if isinstance(step, FeatureStep):
        return UNKNOWN_CATEGORY
    value = type(step).__call__.__globals__.get("UNKNOWN_CATEGORY")
    return value if isinstance(value, str) else None


def _native(step: Any, inner: Any, names: list[str]) -> _NativeScorer:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if isinstance(inner, Pipeline):
        *before, (_, classifier) = inner.steps
        prepare = [s for _, s in before if s is not None and not _is_passthrough(s)]
    else:
        prepare, classifier = [], inner
    if len(prepare) > 1 or (prepare and not isinstance(prepare[0], ColumnTransformer)):
        kinds = ", ".join(type(s).__name__ for s in prepare)
        raise _Unsupported(f"preprocessing {kinds}: only one ColumnTransformer is mirrored")
    blocks, width = _layout(prepare[0] if prepare else None, step, names)
    return _NativeScorer(names, blocks, width, _final(classifier, width))


def _is_str(value: Any, text: str) -> bool:
    return isinstance(value, str) and value == text


def _is_passthrough(estimator: Any) -> bool:
    """``"passthrough"``, also as a fitted ColumnTransformer holds it (an identity
    ``FunctionTransformer``)."""
    from sklearn.preprocessing import FunctionTransformer

    if isinstance(estimator, FunctionTransformer):
        return estimator.func is None and not estimator.kw_args
    return _is_str(estimator, "passthrough")


def _layout(ct: Any, step: Any, names: list[str]) -> tuple[list[_Block], int]:
    """The blocks filling the classifier's matrix, in the ColumnTransformer's output order."""
    from sklearn.pipeline import Pipeline

    categorical = set(step.categorical) & set(names)
    clip = {c: bounds for c, bounds in dict(step.clip).items() if c in names}
    unknown = _unknown_category(step) or UNKNOWN_CATEGORY
    if ct is None:  # the classifier reads the feature step's frame as it is
        if categorical:
            raise _Unsupported("categorical inputs reach the classifier without an encoder")
        groups: list[tuple[list[Any], list[str]]] = [([], list(names))]
    else:
        groups = []
        for _, transformer, selection in ct.transformers_:
            if _is_str(transformer, "drop"):
                continue
            columns = _selected(ct, selection)
            if not columns:
                continue
            if _is_passthrough(transformer):
                chain: list[Any] = []
            elif isinstance(transformer, Pipeline):
                chain = [
                    s for _, s in transformer.steps if s is not None and not _is_passthrough(s)
                ]
            else:
                chain = [transformer]
            groups.append((chain, columns))
    blocks: list[_Block] = []
    width = 0
    for chain, columns in groups:
        for column in columns:
            if column not in names:
                raise _Unsupported(f"column '{column}' is not one of the model's inputs")
        new, width = _chain_blocks(chain, columns, names, categorical, clip, unknown, width)
        blocks.extend(new)
    return blocks, width


def _selected(ct: Any, selection: Any) -> list[str]:
    if isinstance(selection, str) or not isinstance(selection, Iterable):
        raise _Unsupported(f"column selection {selection!r} is not a list of columns")
    columns = []
    for item in selection:
        if isinstance(item, str):
            columns.append(item)
        elif isinstance(item, int | np.integer) and not isinstance(item, bool | np.bool_):
            columns.append(str(ct.feature_names_in_[int(item)]))
        else:
            raise _Unsupported(f"column selection {selection!r} is not a list of columns")
    return columns


def _chain_blocks(
    chain: list[Any],
    columns: list[str],
    names: list[str],
    categorical: set[str],
    clip: Mapping[str, tuple[float | None, float | None]],
    unknown: str,
    start: int,
) -> tuple[list[_Block], int]:
    """Blocks for one transformer of the ColumnTransformer: [imputer] then [encoder | scaler]."""
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    kept = list(columns)  # columns still in the output after the imputer
    fills: dict[str, Any] = {}
    encoder = scaler = None
    for estimator in chain:
        if isinstance(estimator, SimpleImputer) and encoder is None and scaler is None:
            if fills or estimator.add_indicator or not _is_nan(estimator.missing_values):
                raise _Unsupported("SimpleImputer options this scorer does not mirror")
            survivors = []
            for column, statistic in zip(kept, estimator.statistics_, strict=True):
                if _is_nan(statistic):  # a column empty in training: the imputer drops it
                    if estimator.keep_empty_features:
                        raise _Unsupported("SimpleImputer(keep_empty_features=True)")
                    continue
                fills[column] = statistic
                survivors.append(column)
            kept = survivors
        elif isinstance(estimator, OrdinalEncoder | OneHotEncoder) and encoder is None:
            if scaler is not None:
                raise _Unsupported("an encoder after a scaler")
            encoder = estimator
        elif isinstance(estimator, StandardScaler) and encoder is None and scaler is None:
            scaler = estimator
        else:
            raise _Unsupported(f"{type(estimator).__name__} in a ColumnTransformer")
    for estimator in (encoder, scaler):
        if estimator is not None and getattr(estimator, "n_features_in_", len(kept)) != len(kept):
            raise _Unsupported(f"{type(estimator).__name__} reads an unexpected column count")
    blocks: list[_Block] = []
    column_at = start
    for k, column in enumerate(kept):
        source = names.index(column)
        if encoder is not None:
            if column in clip:
                raise _Unsupported(f"'{column}' is both clipped and encoded as a category")
            categories = _categories(encoder.categories_[k], column in categorical, unknown)
            categories = replace(categories, fill=fills.get(column, _NO_FILL))
            if isinstance(encoder, OrdinalEncoder):
                blocks.append(_ordinal(encoder, source, column_at, categories))
                column_at += 1
            else:
                blocks.append(_one_hot(encoder, source, column_at, categories))
                column_at += len(encoder.categories_[k])
            continue
        if column in categorical:
            raise _Unsupported(f"'{column}' is cast to a category but scored as a number")
        fill = fills.get(column)
        if fill is not None and not isinstance(fill, int | float | np.integer | np.floating):
            raise _Unsupported(f"'{column}' is a number imputed with {fill!r}")
        lower, upper = clip.get(column, (None, None))
        mean = scale = None
        if scaler is not None:
            if scaler.with_mean:
                mean = float(scaler.mean_[k])
            if scaler.with_std:
                scale = float(scaler.scale_[k])
        blocks.append(
            _Number(
                source,
                column_at,
                lower=None if lower is None else float(lower),
                upper=None if upper is None else float(upper),
                fill=None if fill is None else float(fill),
                mean=mean,
                scale=scale,
            )
        )
        column_at += 1
    return blocks, column_at


def _categories(fitted: Any, cast: bool, unknown: str) -> _Categories:
    index: dict[Any, int] = {}
    nan_index = None
    for i, category in enumerate(list(fitted)):
        if _is_nan(category):
            nan_index = i
        else:
            index.setdefault(category, i)
    return _Categories(cast=cast, unknown=unknown, fill=_NO_FILL, index=index, nan_index=nan_index)


def _infrequent(encoder: Any) -> bool:
    return bool(getattr(encoder, "_infrequent_enabled", False)) or any(
        getattr(encoder, option, None) is not None for option in ("max_categories", "min_frequency")
    )


def _ordinal(encoder: Any, source: int, column: int, categories: _Categories) -> _Ordinal:
    if _infrequent(encoder) or encoder.handle_unknown not in ("error", "use_encoded_value"):
        raise _Unsupported("OrdinalEncoder options this scorer does not mirror")
    unknown = float(encoder.unknown_value) if encoder.handle_unknown != "error" else None
    return _Ordinal(source, column, categories, float(encoder.encoded_missing_value), unknown)


def _one_hot(encoder: Any, source: int, column: int, categories: _Categories) -> _OneHot:
    if (
        _infrequent(encoder)
        or getattr(encoder, "drop_idx_", None) is not None
        or encoder.handle_unknown not in ("error", "ignore", "infrequent_if_exist")
    ):
        raise _Unsupported("OneHotEncoder options this scorer does not mirror")
    return _OneHot(source, column, categories, encoder.handle_unknown != "error")


def _final(classifier: Any, width: int) -> _Booster | _Linear:
    name = type(classifier).__name__
    module = type(classifier).__module__
    if module.startswith("lightgbm"):
        import lightgbm as lgb

        if not isinstance(classifier, lgb.LGBMClassifier):
            raise _Unsupported(f"{name}: only LGBMClassifier is mirrored")
        booster = classifier.booster_
        if len(classifier.classes_) != 2 or classifier.objective_ != "binary":
            raise _Unsupported(f"{name}: not a binary classifier")
        if booster.pandas_categorical:  # [] or None: no pandas categorical columns
            raise _Unsupported(f"{name}: trained on pandas categorical columns")
        if booster.num_feature() != width:
            raise _Unsupported(f"{name} reads {booster.num_feature()} columns, not {width}")
        return _Booster(booster)
    if module.startswith("sklearn"):
        from sklearn.linear_model import LogisticRegression

        if type(classifier) is LogisticRegression:
            coef = np.asarray(classifier.coef_, dtype=np.float64)
            if len(classifier.classes_) != 2 or coef.shape != (1, width):
                raise _Unsupported(f"{name}: not a binary model of {width} columns")
            return _Linear(np.ascontiguousarray(coef[0]), float(classifier.intercept_[0]))
    raise _Unsupported(f"model {module}.{name}: no native scorer")


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
