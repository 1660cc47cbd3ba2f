"""lookup: the candidate and its reference, checked before anything is scored.

The reference is the environment's holder, or a prevalence-only model when the environment is
empty; each version comes with the artifact hash and feature-definition digests recorded at
registration. A replaced artifact, or a version whose features are no longer computed the way it
was trained, is refused here. A verdict already recorded for the same inputs is found here too.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from modelops.core import tags
from modelops.core.verdict import Verdict, inputs_key, judgement_key, reused_elsewhere
from modelops.integrations import mlflow as mlflow_io
from modelops.integrations.database import RecordedEntry
from modelops.services.gate.context import GateContext
from modelops.services.gate.errors import EvaluationError
from modelops.services.gate.models import (
    PREVALENCE,
    GateModel,
    prevalence_model,
    registered_model,
)


def lookup(
    client: Any, ctx: GateContext, version: str
) -> tuple[GateModel, GateModel, GateModel | None, dict[str, str]]:
    """(candidate, reference, sibling, candidate tags). The sibling is the version trained
    beside the candidate, compared only while the environment is empty."""
    project, environment = ctx.project, ctx.environment
    name = project.spec.registered_model
    mv = mlflow_io.get_version(client, name, version)
    candidate_tags = dict(mv.tags)
    candidate = registered_model("candidate", mv)
    holder = ctx.ledger.holder(project.spec.name, environment)
    sibling = None
    if holder.version is not None:
        aliases = mlflow_io.aliases(client, name)
        if aliases.get(environment) != holder.version:
            raise EvaluationError(
                f"{name}: the ledger says v{holder.version} holds {environment} but the MLflow "
                f"alias '{environment}' points to {aliases.get(environment) or 'nothing'}; "
                f"run 'modelops models sync {project.spec.name}' before gating"
            )
        if holder.version == version:
            raise EvaluationError(f"{name} v{version} already holds {environment}")
        reference = registered_model(
            environment, mlflow_io.get_version(client, name, holder.version)
        )
    else:
        prevalence = candidate_tags.get(tags.PREVALENCE)
        if prevalence is None:
            raise EvaluationError(
                f"{name} v{version} has no '{tags.PREVALENCE}' tag: the prevalence-only "
                "reference of an empty environment cannot be built; register it again with "
                "'modelops train'"
            )
        reference = prevalence_model(float(prevalence), project)
        sibling_version = candidate_tags.get(tags.BASELINE_VERSION) or candidate_tags.get(
            tags.CANDIDATE_VERSION
        )
        if sibling_version:
            sibling = registered_model(
                "sibling", mlflow_io.get_version(client, name, sibling_version)
            )
    return candidate, reference, sibling, candidate_tags


def feature_changes(
    models: list[GateModel], current: dict[str, str], allow: bool
) -> dict[str, list[str]]:
    """Views whose definitions changed since each model was trained; refused unless allowed."""
    changes: dict[str, list[str]] = {}
    for m in models:
        if m.role == PREVALENCE:
            continue
        if m.views is None:
            changes[f"{m.role} v{m.version}"] = ["(no feature digest recorded)"]
            continue
        changed = tags.changed_views(m.views, current)
        if changed:
            changes[f"{m.role} v{m.version}"] = changed
    if changes and not allow:
        said = "; ".join(f"{who}: {', '.join(views)}" for who, views in changes.items())
        raise EvaluationError(
            f"feature definitions changed since training ({said}); the current definitions "
            "would not score these versions as they were trained. Re-train, or pass "
            "--allow-feature-change to compare anyway (recorded in the verdict)"
        )
    return changes


def load(models: list[GateModel], model_name: str) -> None:
    """Load each version after verifying its artifact: a replaced artifact is never scored, nor
    excused by a verdict recorded for the original. Each gets its serving scorer."""
    from modelops.core.scorer import build_scorer

    for m in models:
        if m.role == PREVALENCE:
            continue
        m.model, m.size_bytes = mlflow_io.load_verified_model(
            f"models:/{model_name}/{m.version}",
            m.artifact_sha256,
            f"{model_name} v{m.version} ({m.role})",
        )
        m.scorer = build_scorer(m.model, m.features)


def recorded_verdict(ctx: GateContext, version: str, inputs: dict[str, Any]) -> Verdict | None:
    """The verdict recorded for exactly these inputs, if it has not expired; else one recorded
    in another environment for the same candidate, reference version and holdout
    (:func:`~modelops.core.verdict.judgement_key`), returned as this environment's verdict with
    ``evidence.reused_from``. Anything in the inputs that differs means scoring again; so does
    an entry whose signature cannot be proved when the ledger has a key."""
    project = ctx.project
    max_age = project.spec.promotion.verdict_max_age_days
    key = inputs_key(inputs)
    for entry in reversed(ctx.ledger.entries(project.spec.name, ctx.environment)):
        if entry.action != "validate" or entry.to_version != version:
            continue
        if entry.details.get("inputs_key") != key or "verdict" not in entry.details:
            continue
        verdict = Verdict.from_dict(entry.details["verdict"])
        if verdict.expires_at(max_age) > datetime.now(UTC):
            return verdict
        return None
    return _from_another_environment(ctx, version, inputs)


def _from_another_environment(
    ctx: GateContext, version: str, inputs: dict[str, Any]
) -> Verdict | None:
    """The newest unexpired, provably recorded verdict of ``version`` in another environment
    whose judgement key equals ours, as ours (None when there is none)."""
    wanted = judgement_key(inputs)
    if wanted is None:
        return None
    project = ctx.project
    max_age = project.spec.promotion.verdict_max_age_days
    found: tuple[RecordedEntry, Verdict] | None = None
    for entry in ctx.ledger.entries(project.spec.name):
        if entry.environment == ctx.environment or entry.action != "validate":
            continue
        if entry.to_version != version or "verdict" not in entry.details:
            continue
        verdict = Verdict.from_dict(entry.details["verdict"])
        if judgement_key(verdict.inputs) != wanted:
            continue
        if verdict.expires_at(max_age) <= datetime.now(UTC):
            continue
        if ctx.ledger.keyed and not ctx.ledger.signed(entry):
            continue
        found = (entry, verdict)  # entries come in seq order: the last one is the newest
    if found is None:
        return None
    entry, verdict = found
    return reused_elsewhere(
        verdict,
        environment=ctx.environment,
        inputs=inputs,
        new_id=uuid.uuid4().hex[:16],
        actor=ctx.actor,
        source_seq=entry.seq,
    )
