"""fraud modelling: pure functions the platform calls; no I/O, no MLflow, no Feast.

Fraud is rare (about 0.5 % of payments), so the model is judged on PR-AUC and business cost,
never accuracy, and the decision threshold comes from the costs in project.yaml.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.pipeline import Pipeline

from modelops.core.modeling import lightgbm_pipeline, logistic_baseline

CATEGORICAL = ("txn_merchant_category",)
RATIOS = ("amount_to_avg_24h", "amount_to_avg_7d")


def build_features(frame: pd.DataFrame, feature_names: list[str]) -> pd.DataFrame:
    """Model inputs: the feature service's columns; ratios capped so outliers cannot dominate."""
    inputs = frame[feature_names].copy()
    for column in CATEGORICAL:
        inputs[column] = inputs[column].astype("string").fillna("unknown").astype(object)
    for column in RATIOS:
        inputs[column] = inputs[column].clip(upper=50.0)
    return inputs


def fit(
    x_train: pd.DataFrame,
    y_train: pd.Series,
    x_valid: pd.DataFrame,
    y_valid: pd.Series,
    params: dict[str, Any],
) -> Pipeline:
    """Gradient-boosted trees, early-stopped on validation PR-AUC."""
    return lightgbm_pipeline(x_train, y_train, x_valid, y_valid, params)


def fit_baseline(x_train: pd.DataFrame, y_train: pd.Series) -> Pipeline:
    """Logistic regression on the same inputs."""
    return logistic_baseline(x_train, y_train)
