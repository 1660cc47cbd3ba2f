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

from modelops.core.scorer.base import (
    KINDS,
    LIGHTGBM,
    LOGISTIC,
    PIPELINE,
    SINGLE_ROW_THREADS,
    Scorer,
    ScorerMismatchError,
)
from modelops.core.scorer.build import (
    build_scorer,
)
from modelops.core.scorer.check import (
    ScorerCheck,
    verify_scorer,
)

__all__ = [
    "KINDS",
    "LIGHTGBM",
    "LOGISTIC",
    "PIPELINE",
    "SINGLE_ROW_THREADS",
    "Scorer",
    "ScorerCheck",
    "ScorerMismatchError",
    "build_scorer",
    "verify_scorer",
]
