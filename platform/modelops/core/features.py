"""The platform's feature step: the feature service's columns in, model inputs out.

``FeatureStep`` is what a project gets when its ``model.py`` defines no ``build_features``. It is
declarative (``project.yaml``'s ``features``: categorical columns, clip bounds), so the serving
scorer can apply exactly the same step to numpy rows without pandas. Instances are plain data; the
class is pickled by value with every registered artifact (see ``integrations.mlflow``), so a later
change here cannot change how an earlier version scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

UNKNOWN_CATEGORY = "unknown"


@dataclass(frozen=True)
class FeatureStep:
    """Select ``feature_names``; categories as strings (missing → ``unknown``); clip numbers."""

    categorical: tuple[str, ...] = ()
    clip: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)

    @classmethod
    def from_spec(
        cls,
        categorical: Sequence[str],
        clip: Mapping[str, tuple[float | None, float | None]],
    ) -> FeatureStep:
        return cls(tuple(categorical), {k: (lo, hi) for k, (lo, hi) in clip.items()})

    def __call__(self, frame: pd.DataFrame, feature_names: list[str]) -> pd.DataFrame:
        inputs = frame[feature_names].copy()
        for column in self.categorical:
            if column in inputs.columns:
                inputs[column] = (
                    inputs[column].astype("string").fillna(UNKNOWN_CATEGORY).astype(object)
                )
        for column, (lower, upper) in self.clip.items():
            if column in inputs.columns:
                inputs[column] = inputs[column].clip(lower=lower, upper=upper)
        return inputs
