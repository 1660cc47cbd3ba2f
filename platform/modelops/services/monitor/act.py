"""Acting on a decision: roll back (the path of ``modelops rollback``: ledger, aliases, GitOps
commit), propose a shadow version, or alert. Every action is a ledger entry whose ``details`` is
one of the models of :mod:`modelops.core.monitor_record`, carrying its evidence and the links to
the run's reports. Retraining lives in :mod:`modelops.services.monitor.retrain`."""

from __future__ import annotations

from typing import Any

from modelops.config.project import Project
from modelops.config.settings import Settings
from modelops.core import monitoring as policy_core
from modelops.core.errors import ModelopsError
from modelops.core.monitor_record import AlertDetails, ProposeDetails, Record, RollbackDetails
from modelops.core.promotion import Expectation
from modelops.integrations.database import LedgerEntry, RecordedEntry
from modelops.services.context import ledger as ledger_for
from modelops.services.monitor.common import MonitorError, Outcome, _clean
from modelops.services.monitor.lineage import Lineage


def details(model: type[Record], **values: Any) -> dict[str, Any]:
    """A ledger entry's details, checked against ``model``: JSON-ready (NaN as null), only the
    keys given."""
    return model.model_validate(_clean(values)).dump()


def record_entry(
    settings: Settings,
    kind: str,
    project: str,
    environment: str,
    actor: str,
    reason: str,
    *,
    from_version: str | None,
    to_version: str | None,
    details: dict[str, Any],
    verdict_id: str | None = None,
) -> RecordedEntry:
    """Append the monitor's ``kind`` entry; ``details`` come from :func:`details`."""
    from modelops.core import ledger as ledger_core

    if kind not in ledger_core.ACTIONS:
        raise MonitorError(
            f"the ledger does not record '{kind}' entries (modelops.core.ledger.ACTIONS lacks "
            f"it); the monitor's action was not recorded"
        )
    return ledger_for(settings).append(
        LedgerEntry(
            action=kind,
            project=project,
            environment=environment,
            actor=actor,
            reason=reason[:2000],
            from_version=from_version,
            to_version=to_version,
            verdict_id=verdict_id,
            details=details,
        )
    )


def propose(
    settings: Settings,
    project: Project,
    environment: str,
    action: policy_core.Action,
    lineage: Lineage,
    actor: str,
    links: dict[str, Any],
) -> Outcome:
    """Record a shadow version that beats the served one as a pending promotion."""
    pending = {"version": action.target, "environment": environment, "source": "shadow"}
    entry = record_entry(
        settings,
        policy_core.PROPOSE,
        project.spec.name,
        environment,
        actor,
        f"monitor run {links['run_id']}: {action.reason}",
        from_version=lineage.version,
        to_version=action.target,
        details=details(
            ProposeDetails, **links, evidence=action.evidence, pending_promotion=pending
        ),
    )
    return Outcome(
        action.kind,
        True,
        f"v{action.target} proposed for {environment}",
        entry.seq,
        {"pending_promotion": {**pending, "ledger_seq": entry.seq}},
    )


def alert(
    settings: Settings,
    project: Project,
    environment: str,
    action: policy_core.Action,
    lineage: Lineage,
    actor: str,
    links: dict[str, Any],
) -> Outcome:
    """Record an alert: the action's reason and evidence, linked to the run's reports."""
    entry = record_entry(
        settings,
        policy_core.ALERT,
        project.spec.name,
        environment,
        actor,
        f"monitor run {links['run_id']}: {action.reason}",
        from_version=lineage.version,
        to_version=action.target,
        details=details(AlertDetails, **links, evidence=action.evidence),
    )
    return Outcome(action.kind, True, action.reason, entry.seq)


def rollback(
    settings: Settings,
    project: Project,
    environment: str,
    action: policy_core.Action,
    actor: str,
    push: bool,
    links: dict[str, Any],
    expect: Expectation,
) -> Outcome:
    """The path of ``modelops rollback``: the ledger move (which moves the alias), then the
    GitOps commit; the reason names the run and its report, the details carry the evidence.

    ``expect``: the holder and move head the run judged; the rollback is a compare-and-swap on
    them, refused and recorded (raised as a refusal) when the environment moved since."""
    from modelops.services import promote

    report = links.get("report_html") or links["summary_json"]
    reason = f"monitor run {links['run_id']}: {action.reason}; report {report}"
    kwargs: dict[str, Any] = {
        "details": details(RollbackDetails, **links, evidence=action.evidence)
    }
    lag: ModelopsError | None = None
    try:
        move = promote.rollback(
            settings,
            project.spec.name,
            environment,
            reason=reason[:2000],
            to_version=action.target,
            actor=actor,
            expect=expect,
            **kwargs,
        )
        moved = {
            "from_version": move.from_version,
            "to_version": move.to_version,
            "ledger_seq": move.entry.seq,
        }
    except promote.AliasLagError as exc:  # the ledger moved; the alias follows on models sync
        lag = exc
        moved = {"to_version": action.target, "alias_lags": str(exc)}
    gitops_done = gitops(
        settings, project.spec.name, environment, actor, push, rollback=moved, reason=reason
    )
    detail = f"rolled back {environment} to v{action.target}; {gitops_done}"
    if lag is not None:
        return Outcome(
            action.kind,
            True,
            f"{detail}; {lag}",
            None,
            {**moved, "gitops": gitops_done},
            exit_code=lag.exit_code,
        )
    seq = moved.get("ledger_seq")
    return Outcome(
        action.kind, True, detail, int(seq) if seq else None, {**moved, "gitops": gitops_done}
    )


def gitops(
    settings: Settings,
    project: str,
    environment: str,
    actor: str,
    push: bool,
    *,
    rollback: dict[str, Any] | None = None,
    reason: str = "",
) -> str:
    """Write the environment's holder to the GitOps repository, as ``modelops rollback`` and
    ``modelops deploy`` do; a failure is reported, never raised (the ledger is the truth and
    ``modelops deploy`` writes the commit later)."""
    from modelops.services import deploy
    from modelops.services.workflows.promotion import deploy_reported

    if rollback is None:
        return deploy_reported(settings, project, environment, actor, push)
    try:
        result = deploy.record_rollback(
            settings,
            project,
            environment,
            from_version=rollback.get("from_version"),
            to_version=str(rollback["to_version"]),
            reason=reason,
            actor=actor,
            push=push,
        )
    except ModelopsError as exc:
        return f"GitOps not updated ({exc}); run 'modelops deploy {project} --env {environment}'"
    return f"GitOps commit {result.commit[:12]}" if result.commit else "GitOps already up to date"
