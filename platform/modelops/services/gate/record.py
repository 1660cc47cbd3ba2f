"""record: the verdict to the ledger first, then to the run's artifacts and version tags; an
error while evaluating to the ledger as a failed validation (the gate fails closed)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from modelops.core import tags
from modelops.core.errors import ModelopsError
from modelops.core.verdict import Verdict
from modelops.integrations import mlflow as mlflow_io
from modelops.integrations.database import Ledger, LedgerEntry, RecordedEntry
from modelops.services.gate.errors import EvaluationError
from modelops.services.gate.models import PREVALENCE

if TYPE_CHECKING:
    from modelops.config.project import Project
    from modelops.services.gate.context import GateContext

log = logging.getLogger(__name__)


@contextmanager
def failures_recorded(
    ledger: Ledger,
    project: Project,
    environment: str,
    version: str,
    actor: str,
    commit: str,
    *,
    record: bool,
) -> Iterator[None]:
    """Any error inside becomes an :class:`EvaluationError`, recorded in the ledger (when
    ``record``) as a failed validation of ``version``."""

    def failed(message: str) -> None:
        if record:
            record_error(ledger, project, environment, version, actor, message, commit)

    try:
        yield
    except EvaluationError as exc:
        failed(str(exc))
        raise
    except ModelopsError as exc:
        failed(str(exc))
        raise EvaluationError(str(exc)) from exc
    except Exception as exc:
        message = (
            f"evaluation of {project.spec.registered_model} v{version} failed: "
            f"{type(exc).__name__}: {exc}"
        )
        failed(message)
        raise EvaluationError(message) from exc


def record_error(
    ledger: Ledger,
    project: Project,
    environment: str,
    version: str,
    actor: str,
    message: str,
    commit: str,
) -> None:
    """An errored validation withdraws any earlier pass of the same version."""
    try:
        ledger.append(
            LedgerEntry(
                action="validate",
                project=project.spec.name,
                environment=environment,
                actor=actor,
                reason=f"could not evaluate: {message}"[:2000],
                to_version=version,
                details={
                    "passed": False,
                    "error": message[:2000],
                    "failed_rules": ["error"],
                    "git_commit": commit,
                },
            )
        )
    except Exception:  # the error itself is what the user must see
        log.exception("could not record the failed validation in the ledger")


def record(
    client: Any, ctx: GateContext, verdict: Verdict, run_id: str | None, *, reused: bool
) -> RecordedEntry:
    """Ledger first (the truth promotion reads), then the run's artifacts and version tags."""
    from modelops.services.report import to_markdown

    entry = ctx.ledger.append(_entry(ctx, verdict, reused=reused))
    if run_id is not None:
        mlflow_io.log_run_artifacts(
            client,
            run_id,
            f"gate/{verdict.id}",
            {"verdict.json": verdict.to_json(), "report.md": to_markdown(verdict, ctx.project)},
        )
    prefix = f"{tags.PREFIX}.gate.{verdict.environment}"
    mlflow_io.set_version_tags(
        client,
        verdict.model_name,
        verdict.candidate.version,
        {
            f"{prefix}.verdict": "pass" if verdict.passed else "fail",
            f"{prefix}.verdict_id": verdict.id,
            f"{prefix}.against": f"{verdict.reference.role}:{verdict.reference.version}",
            f"{prefix}.at": verdict.created_at,
            f"{prefix}.ledger_seq": str(entry.seq),
        },
    )
    return entry


def _entry(ctx: GateContext, verdict: Verdict, *, reused: bool) -> LedgerEntry:
    """The ledger's ``validate`` entry for ``verdict``: the verdict whole, and the facts
    promotion checks without reading it."""
    source = verdict.evidence.get("reused_from") if reused else None
    # A reused verdict was computed by the code of its first recording: that commit is what the
    # trusted-branch rule must check, not the one that found it again.
    commit = str(verdict.evidence.get("git_commit") or ctx.commit) if reused else ctx.commit
    return LedgerEntry(
        action="validate",
        project=verdict.project,
        environment=verdict.environment,
        actor=verdict.actor,
        reason=(
            f"same inputs as verdict {source['verdict_id']} of {source['environment']}: "
            if source
            else "same inputs as before: "
            if reused
            else ""
        )
        + ("passed every rule" if verdict.passed else "failed: " + "; ".join(verdict.failed_rules)),
        from_version=verdict.reference.version
        if verdict.reference.role not in (PREVALENCE, "baseline")
        else None,
        to_version=verdict.candidate.version,
        verdict_id=verdict.id,
        details={
            "passed": verdict.passed,
            "reused": reused,
            "reused_from": source,
            "inputs_key": verdict.inputs_key,
            "reference_role": verdict.reference.role,
            "reference_version": verdict.reference.version,
            "candidate_artifact_sha256": verdict.inputs["candidate"][1],
            "holdout_sha256": verdict.holdout.sha256,
            "holdout_rows": verdict.holdout.rows,
            "failed_rules": verdict.failed_rules,
            "created_at": verdict.created_at,
            "git_commit": commit,
            "project_yaml_sha256": ctx.project.spec_hash,
            "costs_placeholder": bool((verdict.evidence.get("costs") or {}).get("placeholder")),
            "verdict": verdict.to_dict(),
        },
    )
