"""credit_risk modelling: pure functions the platform calls; no I/O, no MLflow, no Feast.

``modelops train credit_risk`` builds the point-in-time training set from the feature service in
project.yaml, splits it by time, and calls these functions.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.pipeline import Pipeline

from modelops.core.modeling import lightgbm_pipeline, logistic_baseline

CATEGORICAL = ("sector",)


def build_features(frame: pd.DataFrame, feature_names: list[str]) -> pd.DataFrame:
    """Model inputs: exactly the feature service's columns, categories as strings."""
    inputs = frame[feature_names].copy()
    for column in CATEGORICAL:
        inputs[column] = inputs[column].astype("string").fillna("unknown").astype(object)
    return inputs


def fit(
    x_train: pd.DataFrame,
    y_train: pd.Series,
    x_valid: pd.DataFrame,
    y_valid: pd.Series,
    params: dict[str, Any],
) -> Pipeline:
    """Gradient-boosted trees, early-stopped on the validation window."""
    return lightgbm_pipeline(x_train, y_train, x_valid, y_valid, params)


def fit_baseline(x_train: pd.DataFrame, y_train: pd.Series) -> Pipeline:
    """Logistic regression: what a careful analyst would build first."""
    return logistic_baseline(x_train, y_train)
