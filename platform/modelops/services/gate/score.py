"""score: every model with its own registered code, through the scorer it would serve with."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from modelops.core.scorer import PIPELINE
from modelops.services.gate.errors import EvaluationError
from modelops.services.gate.models import GateModel

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

SCORER_CHECK_ROWS = 2_000
"""Holdout rows on which each serving scorer is checked against its registered pipeline."""
SCORER_TOLERANCE = 1e-9


def score(
    frame: pd.DataFrame, models: list[GateModel], feature_service: str, served: frozenset[str]
) -> dict[str, np.ndarray]:
    """Scores of the candidate and the reference on every holdout row, by role.

    Each model is scored by its serving scorer, the path the service runs, after checking on
    the first rows that it gives its registered pipeline's scores; a scorer that disagrees
    stops the gate (the verdict would judge something that does not serve).
    """
    candidate = models[0]
    missing = [f for f in candidate.features if f not in served]
    if missing:
        raise EvaluationError(
            f"candidate v{candidate.version} needs {missing}, not served by '{feature_service}'"
        )
    for m in models:
        check_scorer(m, frame)
    log.info("scoring %d holdout rows", len(frame))
    return {m.role: m.scores(frame) for m in models[:2]}


def check_scorer(m: GateModel, frame: pd.DataFrame) -> None:
    """Record in ``m.scorer_report`` how its serving scorer agrees with its pipeline; raise when
    it does not."""
    from modelops.core.scorer import verify_scorer

    if m.scorer is None:
        m.scorer_report = {"kind": "constant", "rows": 0, "max_abs_diff": 0.0, "flips": 0}
        return
    if m.scorer.kind == PIPELINE:  # scored by the registered pipeline itself: nothing to compare
        m.scorer_report = {
            "kind": PIPELINE,
            "reason": m.scorer.reason,
            "rows": 0,
            "max_abs_diff": 0.0,
            "flips": 0,
        }
        return
    check = verify_scorer(
        m.scorer,
        m.model,
        frame.iloc[:SCORER_CHECK_ROWS],
        m.features,
        SCORER_TOLERANCE,
        threshold=m.threshold,
    )
    m.scorer_report = dataclasses.asdict(check) | {"detail": check.detail}
    if not check.passed:
        raise EvaluationError(
            f"v{m.version} ({m.role}): {check.detail}; the gate will not judge a path that "
            "would not serve"
        )
