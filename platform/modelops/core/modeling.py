"""Reusable scikit-learn pipelines for tabular classifiers.

Every model the platform registers is a fitted ``sklearn.pipeline.Pipeline`` that takes the raw
feature frame (strings for categories, numbers for the rest, exactly the columns of the feature
service) and returns probabilities from ``predict_proba``. Projects build theirs from these.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline


def split_columns(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(categorical, numeric) column names by dtype."""
    import pandas as pd

    categorical = [
        c
        for c in frame.columns
        if pd.api.types.is_string_dtype(frame[c])
        or isinstance(frame[c].dtype, pd.CategoricalDtype)
        or frame[c].dtype == object
    ]
    numeric = [c for c in frame.columns if c not in categorical]
    return categorical, numeric


def lightgbm_pipeline(
    x_train: pd.DataFrame,
    y_train: Any,
    x_valid: pd.DataFrame,
    y_valid: Any,
    params: dict[str, Any],
    early_stopping_rounds: int = 50,
) -> Pipeline:
    """LightGBM on ordinal-encoded categories, early-stopped on the validation window."""
    import lightgbm as lgb
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    categorical, numeric = split_columns(x_train)
    prep = ColumnTransformer(
        [
            (
                "categories",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1
                ),
                categorical,
            ),
            ("numbers", "passthrough", numeric),
        ],
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    train_matrix = prep.fit_transform(x_train)
    valid_matrix = prep.transform(x_valid)
    settings = {
        "n_estimators": 600,
        "learning_rate": 0.05,
        "num_leaves": 31,
        "verbose": -1,
        "n_jobs": 2,
        "random_state": 7,
        **params,
    }
    monotone = settings.pop("monotone_constraints", None)
    if isinstance(monotone, dict):
        settings["monotone_constraints"] = [int(monotone.get(c, 0)) for c in train_matrix.columns]
    classifier = lgb.LGBMClassifier(**settings)
    classifier.fit(
        train_matrix,
        y_train,
        eval_set=[(valid_matrix, y_valid)],
        eval_metric="average_precision",
        categorical_feature=[c for c in categorical if c in train_matrix.columns] or "auto",
        callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)],
    )
    return Pipeline([("prepare", prep), ("classifier", classifier)])


def logistic_baseline(x_train: pd.DataFrame, y_train: Any) -> Pipeline:
    """Standardised logistic regression with one-hot categories: the honest simple baseline."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical, numeric = split_columns(x_train)
    prep = ColumnTransformer(
        [
            (
                "categories",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                categorical,
            ),
            ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ]
    )
    model = Pipeline([("prepare", prep), ("classifier", LogisticRegression(max_iter=2000))])
    model.fit(x_train, y_train)
    return model


def with_feature_step(
    build_features: Callable[[pd.DataFrame, list[str]], pd.DataFrame],
    feature_names: list[str],
    model: Any,
) -> Pipeline:
    """The artifact a version registers: the feature service's frame in, probabilities out.

    The project's ``build_features`` becomes the pipeline's first step, pickled with the model,
    so scoring a registered version needs nothing from today's project folder: a later change to
    the transformation cannot change how an earlier version scores.
    """
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    step = FunctionTransformer(
        build_features, kw_args={"feature_names": list(feature_names)}, validate=False
    )
    return Pipeline([("build_features", step), ("model", model)])


def _classifier(model: Any) -> Any:
    steps = getattr(model, "named_steps", {})
    if "model" in steps:
        return _classifier(steps["model"])
    return steps.get("classifier")


def feature_importance(model: Any) -> dict[str, float]:
    """Share of total gain per input column, for LightGBM pipelines; empty for other models."""
    classifier = _classifier(model)
    booster = getattr(classifier, "booster_", None)
    if booster is None:
        return {}
    gains = booster.feature_importance(importance_type="gain")
    total = float(gains.sum()) or 1.0
    return {name: float(g) / total for name, g in zip(booster.feature_name(), gains, strict=True)}


KIND_NAMES = {
    "LGBMClassifier": "lightgbm",
    "LogisticRegression": "logistic regression",
    "XGBClassifier": "xgboost",
    "CatBoostClassifier": "catboost",
    "RandomForestClassifier": "random forest",
    "HistGradientBoostingClassifier": "histogram gradient boosting",
    "GradientBoostingClassifier": "gradient boosting",
}
"""Class names of common estimators -> how ``models list`` names the kind."""


def model_kind(model: Any) -> str:
    """What a fitted model is, by its final estimator: ``lightgbm``, ``logistic regression``,
    or the estimator's class name for anything else (a project's own ``fit``)."""
    inner = model
    for _ in range(16):  # pipelines nest a few levels at most
        steps = getattr(inner, "steps", None)
        if not steps:
            break
        inner = steps[-1][1]
    name = type(inner).__name__
    return KIND_NAMES.get(name, name)
