"""credit_risk modelling: pure functions the platform calls; no I/O, no MLflow, no Feast.

This file is optional. It is here as the template to copy when a project needs its own fitting:
define any of ``build_features``, ``fit`` and ``fit_baseline``; the platform supplies the rest.
credit_risk keeps the platform's feature step (``features`` in project.yaml, which the serving
scorer applies without pandas) and spells out the two fits it relies on.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.pipeline import Pipeline

from modelops.core.modeling import lightgbm_pipeline, logistic_baseline


def fit(
    x_train: pd.DataFrame,
    y_train: pd.Series,
    x_valid: pd.DataFrame,
    y_valid: pd.Series,
    params: dict[str, Any],
) -> Pipeline:
    """Gradient-boosted trees with the monotone constraints of project.yaml, early-stopped on
    the validation window's PR-AUC."""
    return lightgbm_pipeline(x_train, y_train, x_valid, y_valid, params, early_stopping_rounds=50)


def fit_baseline(x_train: pd.DataFrame, y_train: pd.Series) -> Pipeline:
    """Logistic regression: what a careful analyst would build first."""
    return logistic_baseline(x_train, y_train)
