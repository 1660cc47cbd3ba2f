"""Reading a fitted pipeline once into a scorer (:func:`build_scorer`): which steps are mirrored
natively, and why a pipeline falls back to ``predict_proba``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from modelops.core.errors import DataError
from modelops.core.features import UNKNOWN_CATEGORY, FeatureStep
from modelops.core.scorer.base import Scorer, _is_nan
from modelops.core.scorer.blocks import (
    _NO_FILL,
    _Block,
    _Booster,
    _Categories,
    _Linear,
    _NativeScorer,
    _Number,
    _OneHot,
    _Ordinal,
    _PipelineScorer,
)

if TYPE_CHECKING:
    pass


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
