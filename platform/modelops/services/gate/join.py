"""join: the holdout rows, point-in-time, through the same checks as training.

The join reads the feature store and service the gate's context opened; its result also keys
the verdict (:func:`verdict_inputs`): the same inputs give the same verdict.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from modelops.core import tags
from modelops.services.datasets import TrainingSet, build_training_set
from modelops.services.gate.context import GateContext
from modelops.services.gate.errors import EvaluationError
from modelops.services.gate.models import GateModel


def join(ctx: GateContext, as_of: datetime, candidate_tags: dict[str, str]) -> TrainingSet:
    """The holdout rows, point-in-time, checked as at training (missing shares, availability)."""
    data = build_training_set(
        ctx.settings,
        ctx.project,
        as_of,
        windows=("holdout",),
        join_cache=ctx.join_cache,
        trained_missing=json.loads(candidate_tags.get(tags.MISSING_SHARE_TRAIN, "null")),
        store=ctx.store,
        service=ctx.service,
    )
    if data.frames["holdout"].empty:
        raise EvaluationError("the holdout window holds no rows")
    return data


def verdict_inputs(
    ctx: GateContext,
    models: tuple[GateModel, GateModel, GateModel | None],
    data: TrainingSet,
    current_views: dict[str, str],
    allow_feature_change: bool,
) -> dict[str, Any]:
    """Everything the verdict depends on: its digest keys the verdict in the ledger."""
    candidate, reference, sibling = models
    return {
        "environment": ctx.environment,
        "candidate": [candidate.version, candidate.artifact_sha256],
        "reference": [reference.role, reference.version, reference.artifact_sha256],
        "sibling": [sibling.version, sibling.artifact_sha256] if sibling else None,
        "holdout_sha256": data.fingerprints["holdout"].sha256,
        "project_yaml_sha256": ctx.project.spec_hash,
        "feature_digest": tags.feature_digest(current_views),
        "allow_feature_change": allow_feature_change,
    }
