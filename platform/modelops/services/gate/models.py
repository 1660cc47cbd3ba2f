"""A registered version as the gate scores it, and the prevalence-only reference."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelops.config.project import Project
from modelops.core import tags
from modelops.core.scorer import PIPELINE
from modelops.services.gate.errors import EvaluationError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from modelops.core.scorer import Scorer

PREVALENCE = "prevalence"
SCORE_CHUNK_ROWS = 200_000
"""Rows a model scores per call: a pipeline's intermediate frames then stay small (a whole
million-row holdout at once costs about 0.6 GiB more at its peak, and the first touch of that
memory time); every registered model scores each row on its own, so the scores are the same."""


@dataclass
class GateModel:
    """A version as the gate scores it."""

    role: str
    version: str
    threshold: float
    features: list[str]
    artifact_sha256: str
    model: Any = None
    size_bytes: int = 0
    views: dict[str, str] | None = None
    threshold_free_score: float = math.nan
    run_id: str | None = None
    trained_role: str = ""
    #: The threshold was chosen with placeholder costs (none in project.yaml at training).
    placeholder_costs: bool = False
    scorer: Scorer | None = None
    scorer_report: dict[str, Any] = field(default_factory=dict)

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        """The serving scorer's probabilities for every row, in chunks of bounded memory."""
        import numpy as np

        if self.scorer is None:  # prevalence-only reference: one score for every row
            return np.full(len(frame), self.threshold_free_score)
        scorer, model, features = self.scorer, self.model, self.features
        if scorer.kind == PIPELINE:  # no native mirror: the registered pipeline itself
            x = frame[features]

            def chunk(rows: slice) -> np.ndarray:
                return np.asarray(model.predict_proba(x.iloc[rows])[:, 1], dtype=np.float64)

        else:
            columns = {f: frame[f].to_numpy() for f in features}

            def chunk(rows: slice) -> np.ndarray:
                return scorer.score_columns({f: v[rows] for f, v in columns.items()})

        starts = range(0, max(len(frame), 1), SCORE_CHUNK_ROWS)
        return np.concatenate([chunk(slice(s, s + SCORE_CHUNK_ROWS)) for s in starts])

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        """scikit-learn's interface over the serving scorer (permutation importance uses it)."""
        import numpy as np

        positive = self.scores(x)
        return np.column_stack([1.0 - positive, positive])


def registered_model(role: str, mv: Any) -> GateModel:
    """The version ``mv`` (an MLflow model version) with what its tags recorded at training."""
    model_tags = dict(mv.tags)
    threshold = model_tags.get(tags.THRESHOLD)
    if threshold is None:
        raise EvaluationError(f"v{mv.version} has no '{tags.THRESHOLD}' tag")
    features = [f for f in model_tags.get(tags.FEATURES, "").split(",") if f]
    if not features:
        raise EvaluationError(f"v{mv.version} has no '{tags.FEATURES}' tag")
    views = model_tags.get(tags.FEATURE_DIGEST_VIEWS)
    return GateModel(
        role=role,
        version=str(mv.version),
        threshold=float(threshold),
        features=features,
        artifact_sha256=model_tags.get(tags.ARTIFACT_SHA256, ""),
        views=tags.parse_view_digests(views) if views else None,
        run_id=mv.run_id,
        trained_role=model_tags.get(tags.ROLE, ""),
        placeholder_costs=model_tags.get(tags.COSTS) == tags.COSTS_PLACEHOLDER,
    )


def prevalence_model(prevalence: float, project: Project) -> GateModel:
    """The "as is" process with no model: every case gets the training prevalence, and the
    cheaper of flagging everyone or no one (decided by costs, not by the holdout's labels)."""
    import numpy as np

    costs = project.spec.decision_costs
    flag_all = prevalence * costs.false_negative > (1 - prevalence) * costs.false_positive
    threshold = prevalence if flag_all else float(np.nextafter(prevalence, 1.0))
    return GateModel(
        role=PREVALENCE,
        version="-",
        threshold=threshold,
        features=[],
        artifact_sha256=f"prevalence={prevalence!r}",
        threshold_free_score=prevalence,
    )
