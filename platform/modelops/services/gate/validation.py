"""``modelops validate``: the gate's steps in order, lookup → join → score → judge → record.

What the steps need from the settings is resolved once (:func:`.context.open_context`); each
step reads that context. A verdict recorded for the same inputs is returned, not judged again.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from modelops.config.settings import Settings
from modelops.core import progress
from modelops.core.verdict import Verdict
from modelops.integrations import feast as feast_io
from modelops.integrations import mlflow as mlflow_io
from modelops.services.gate.context import GateContext, open_context
from modelops.services.gate.errors import EvaluationError
from modelops.services.gate.join import join, verdict_inputs
from modelops.services.gate.judge import judge_holdout
from modelops.services.gate.lookup import feature_changes, load, lookup, recorded_verdict
from modelops.services.gate.merged import spark_statistics
from modelops.services.gate.models import GateModel
from modelops.services.gate.record import record as record_verdict
from modelops.services.gate.score import score

log = logging.getLogger(__name__)


def validate(
    settings: Settings,
    project_name: str,
    version: str,
    *,
    against: str = "production",
    as_of: datetime | None = None,
    actor: str | None = None,
    allow_feature_change: bool = False,
    record: bool = True,
) -> Verdict:
    """Gate ``version`` against the holder of ``against`` and record the verdict.

    Returns the verdict whether it passed or not; raises :class:`EvaluationError` when it could
    not be reached (recorded in the ledger as a failed validation).

    Args:
        record: False computes the verdict and writes nothing (ledger, MLflow): what a
            pull-request job runs, whose code is not trusted to record verdicts.
    """
    version = str(version)
    ctx = open_context(settings, project_name, against, version, actor, record=record)
    with ctx.failures_recorded(version):
        return _validate(ctx, version, as_of or datetime.now(UTC), allow_feature_change)


def _validate(
    ctx: GateContext, version: str, as_of: datetime, allow_feature_change: bool
) -> Verdict:
    """lookup → join → (a recorded verdict for the same inputs?) → score → judge → record."""
    spec = ctx.project.spec
    with mlflow_io.session(ctx.tracking) as client:
        candidate, reference, sibling, candidate_tags = lookup(client, ctx, version)
        models = [candidate, reference, *([sibling] if sibling else [])]
        current_views = feast_io.definitions_digest(ctx.store, ctx.service)
        changes = feature_changes(models, current_views, allow_feature_change)
        load(models, spec.registered_model)
        data = join(ctx, as_of, candidate_tags)
        trio = (candidate, reference, sibling)
        inputs = verdict_inputs(ctx, trio, data, current_views, allow_feature_change)
        previous = recorded_verdict(ctx, version, inputs)
        if previous is not None:
            origin = previous.evidence.get("reused_from")
            if origin:  # measured for another environment: a new id, the same measurements
                log.info(
                    "verdict %s of %s judged the same candidate, reference and holdout: "
                    "reusing its measurements as verdict %s",
                    origin.get("verdict_id"),
                    origin.get("environment"),
                    previous.id,
                )
            else:
                log.info("same inputs as verdict %s: returning it", previous.id)
            if ctx.record:
                record_verdict(client, ctx, previous, None, reused=True)
            return previous

        frame = data.frames["holdout"]
        with progress.stage(f"score {len(models)} models on the holdout", len(frame)):
            scores = score(frame, models, spec.feature_service, ctx.served)
        merged = None
        if ctx.settings.profile == "cluster":  # metrics, intervals and segments on Spark
            with progress.stage(f"statistics on Spark ({ctx.settings.spark_master})", len(frame)):
                try:
                    merged = spark_statistics(
                        ctx.settings, ctx.project, frame, candidate, reference
                    )
                except (ValueError, RuntimeError) as exc:  # a worker's failure, in one line
                    raise EvaluationError(f"statistics on Spark: {exc}") from exc
        with progress.stage("judge: intervals, segments, leakage, latency", len(frame)):
            verdict = judge_holdout(
                ctx.project,
                frame,
                scores,
                trio,
                data,
                as_of,
                ctx.actor,
                inputs,
                candidate_tags,
                merged,
            )
        verdict.evidence.update(_evidence(ctx, changes, models))
        if not candidate.run_id:
            raise EvaluationError(
                f"{spec.registered_model} v{version} has no training run to attach the verdict to"
            )
        if ctx.record:
            record_verdict(client, ctx, verdict, candidate.run_id, reused=False)
    return verdict


def _evidence(
    ctx: GateContext, changes: dict[str, list[str]], models: list[GateModel]
) -> dict[str, Any]:
    """What the verdict records beside the rules' evidence: the feature changes allowed, the
    commit, each scorer's check and the rules' settings."""
    spec = ctx.project.spec
    return {
        "feature_changes": changes,
        "git_commit": ctx.commit,
        "scorers": {m.role: m.scorer_report for m in models},
        "rules": {
            "promotion": spec.promotion.model_dump(mode="json"),
            "data_checks": spec.data_checks.model_dump(mode="json"),
            "primary_metric": spec.primary_metric,
        },
    }
