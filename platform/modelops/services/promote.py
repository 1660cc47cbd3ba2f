"""``modelops promote``, ``rollback`` and ``history``: who serves where, and how it got there.

The holder of each environment lives in the platform database and moves by compare-and-swap
together with its ledger entry, so of two concurrent promotions exactly one wins. The MLflow
alias named after the environment follows (and ``<env>-previous`` keeps the last holder
addressable), so the MLflow UI and ``models:/<name>@production`` show the same thing.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelops.config.project import Project
from modelops.config.settings import Settings
from modelops.core import promotion as rules
from modelops.core import tags
from modelops.core.errors import ModelopsError, RegistryError
from modelops.core.verdict import Verdict
from modelops.integrations import git as git_io
from modelops.integrations import mlflow as mlflow_io
from modelops.integrations.database import (
    Holder,
    Ledger,
    LedgerEntry,
    LedgerIntegrityError,
    RecordedEntry,
    Verification,
)
from modelops.services import judged as judged_io
from modelops.services.context import approval_required, tracking, verified_ledger
from modelops.services.context import ledger as ledger_for
from modelops.services.context import project as project_for
from modelops.services.identity import resolve_actor
from modelops.services.judged import PromotionRefusedError as PromotionRefusedError
from modelops.services.judged import refuse as _refuse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Move:
    project: str
    model_name: str
    environment: str
    from_version: str | None
    to_version: str
    entry: RecordedEntry


def _check_environment(settings: Settings, environment: str) -> None:
    if environment not in settings.environments:
        raise ModelopsError(
            f"unknown environment '{environment}' (configured: {', '.join(settings.environments)})"
        )


def latest_verdict(
    ledger: Ledger, project: str, environment: str, version: str
) -> RecordedEntry | None:
    entries = [
        e
        for e in ledger.entries(project, environment)
        if e.action == "validate" and e.to_version == version
    ]
    return entries[-1] if entries else None


def _verdict_time(entry: RecordedEntry) -> datetime:
    created = entry.details.get("created_at")
    return datetime.fromisoformat(created) if isinstance(created, str) else entry.at


def _mirror_to_mlflow(settings: Settings, model_name: str, entry: RecordedEntry) -> None:
    """Aliases and version tags follow the ledger, so the MLflow UI shows who serves where.

    ``<env>`` points to the new holder and ``<env>-previous`` to the one it replaced; the new
    holder's ``modelops.env.<env>.*`` tags say when, by whom, how and why it got there, and the
    replaced version's ``...left_at`` when it stopped serving.
    """
    environment, previous, new = entry.environment, entry.from_version, entry.to_version
    assert new is not None
    prefix = tags.environment(environment)
    with mlflow_io.session(tracking(settings)) as client:
        if previous:
            mlflow_io.set_alias(client, model_name, f"{environment}-previous", previous)
            mlflow_io.set_version_tags(
                client, model_name, previous, {f"{prefix}.left_at": entry.at.isoformat()}
            )
        else:
            mlflow_io.delete_alias(client, model_name, f"{environment}-previous")
        mlflow_io.set_alias(client, model_name, environment, new)
        mlflow_io.set_version_tags(
            client,
            model_name,
            new,
            {
                f"{prefix}.since": entry.at.isoformat(),
                f"{prefix}.by": entry.actor,
                f"{prefix}.action": entry.action,
                f"{prefix}.reason": entry.reason,
                f"{prefix}.ledger_seq": str(entry.seq),
            },
        )


def apply_policy(settings: Settings, project_name: str, verdict: Verdict) -> Move | None:
    """What the project's promotion policy does after a recorded passing verdict.

    Today one rule: ``promotion.auto_promote_staging`` moves staging to a candidate that passed
    against staging. Every other move stays explicit. Returns the move, or None.
    """
    if not verdict.passed or verdict.environment != "staging":
        return None
    project = project_for(settings, project_name)
    if not project.spec.promotion.auto_promote_staging:
        return None
    return promote(
        settings,
        project_name,
        verdict.candidate.version,
        "staging",
        reason=f"automatic after verdict {verdict.id} (project policy auto_promote_staging)",
        expect=judged_io.verdict_judged(
            ledger_for(settings), project.spec.name, verdict.id, "staging"
        ),
    )


def promote(
    settings: Settings,
    project_name: str,
    version: str,
    environment: str,
    *,
    approve: bool = False,
    approver: str | None = None,
    reason: str | None = None,
    expect: rules.Expectation | None = None,
) -> Move:
    """Move ``environment`` to ``version`` if a fresh passing verdict and approvals allow it.

    The rules are :mod:`modelops.core.promotion`'s; this gathers their facts, records a refusal
    in the ledger, or writes the approval and the move in one compare-and-swap transaction.

    ``expect``: what an automatic move was decided on (the holder and the environment's move
    head, see :mod:`modelops.services.judged`); if the environment moved since, the move is
    refused and the refusal recorded, also when the move happens between the check and the
    write (the compare-and-swap expects the revision of the judged state).
    """
    _check_environment(settings, environment)
    project = project_for(settings, project_name)
    spec = project.spec
    version = str(version)
    ledger = verified_ledger(settings, "promote")
    actor = resolve_actor(approver, settings.root)
    who = actor or "unknown"
    holder, _ = judged_io.holder_for_move(ledger, spec.name, environment, who, version, expect)
    with mlflow_io.session(tracking(settings)) as client:
        registered = mlflow_io.get_version(client, spec.registered_model, version)
    verdict = latest_verdict(ledger, spec.name, environment, version)
    facts = _facts(settings, project, ledger, environment, version, holder, verdict)
    facts = dataclasses.replace(
        facts,
        approval=rules.ApprovalFacts(
            required=environment in approval_required(settings, project),
            approve=approve,
            approver=actor,
            reason=reason,
            allow_self_approval=settings.allow_self_approval,
            trained_by=registered.tags.get(tags.TRAINED_BY),
            approvers=settings.approvers.get(environment),
        ),
    )
    refused = rules.refusal(facts)
    if refused is not None:
        raise _refuse(ledger, spec.name, environment, who, version, holder, refused)
    approval: list[LedgerEntry] = []
    if facts.approval.required:
        assert actor is not None and reason is not None and verdict is not None
        approval.append(
            LedgerEntry(
                action="approve",
                project=spec.name,
                environment=environment,
                actor=actor,
                reason=reason.strip(),
                from_version=holder.version,
                to_version=version,
                verdict_id=verdict.verdict_id,
            )
        )
    assert verdict is not None
    # The approval and the move are one transaction; a lost race writes neither and is
    # recorded as a refusal.
    entry = judged_io.swap(
        ledger,
        LedgerEntry(
            action="promote",
            project=spec.name,
            environment=environment,
            actor=who,
            reason=(reason or "passed the gate").strip(),
            from_version=holder.version,
            to_version=version,
            verdict_id=verdict.verdict_id,
        ),
        holder,
        expect,
        approval,
    )
    _sync_environment(settings, project, ledger, environment, "promoted")
    return Move(spec.name, spec.registered_model, environment, holder.version, version, entry)


def _verdict_facts(ledger: Ledger, entry: RecordedEntry) -> rules.VerdictFacts:
    details = entry.details
    return rules.VerdictFacts(
        verdict_id=entry.verdict_id,
        passed=bool(details.get("passed")),
        error=details.get("error") or None,
        failed_rules=list(details.get("failed_rules", [])),
        made_at=_verdict_time(entry),
        actor=entry.actor,
        judged_against=entry.from_version,
        artifact_sha256=details.get("candidate_artifact_sha256") or None,
        git_commit=str(details.get("git_commit") or "unknown"),
        signed=ledger.signed(entry) if ledger.keyed else None,
        placeholder_costs=bool(details.get("costs_placeholder")),
    )


def _facts(
    settings: Settings,
    project: Project,
    ledger: Ledger,
    environment: str,
    version: str,
    holder: Holder,
    verdict: RecordedEntry | None,
) -> rules.PromotionFacts:
    """What the promotion rules need, read from the ledger, the registry and git. The artifact
    hash and the commit's branch are read only for a passing verdict (no rule needs them else)."""
    spec = project.spec
    position = settings.environments.index(environment)
    below = settings.environments[position - 1] if position > 0 else None
    judged = _verdict_facts(ledger, verdict) if verdict is not None else None
    sha = ""
    on_branch: bool | None = None
    branch = settings.resolved_trusted_branch
    if judged is not None and judged.passed:
        with mlflow_io.session(tracking(settings)):
            sha = mlflow_io.artifact_sha256(f"models:/{spec.registered_model}/{version}")
        if branch:
            on_branch = git_io.on_branch(settings.root, judged.git_commit or "unknown", branch)
    return rules.PromotionFacts(
        project=spec.name,
        version=version,
        environment=environment,
        holder=holder.version,
        below=below,
        held_below=below is not None and version in ledger.past_holders(spec.name, below),
        verdict=judged,
        verdict_max_age_days=spec.promotion.verdict_max_age_days,
        now=datetime.now(UTC),
        artifact_sha256=sha,
        trusted_branch=branch,
        commit_on_branch=on_branch,
        approval=rules.ApprovalFacts(False, False, None, None, True, None),
        rolled_back_at=_rolled_back_at(ledger, spec.name, environment, version),
        last_environment=position == len(settings.environments) - 1,
        placeholder_costs=spec.placeholder_costs,
        project_file=_shown(project.spec_file, settings.root),
    )


def _shown(path: Path, root: Path) -> str:
    """``path`` relative to the platform root when it lies under it."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _rolled_back_at(
    ledger: Ledger, project: str, environment: str, version: str
) -> datetime | None:
    """When ``version`` was last rolled back out of ``environment`` (None: never)."""
    rolled = [
        e.at
        for e in ledger.entries(project, environment)
        if e.action == "rollback" and e.from_version == version
    ]
    return rolled[-1] if rolled else None


def rollback(
    settings: Settings,
    project_name: str,
    environment: str,
    *,
    reason: str,
    to_version: str | None = None,
    actor: str | None = None,
    details: dict[str, Any] | None = None,
    expect: rules.Expectation | None = None,
) -> Move:
    """Restore the previous holder (or ``to_version``, which must have held ``environment``).

    Skips the gate: returning to a version that already served is the safe path. ``details``
    (JSON) goes into the ledger entry: the monitor's evidence and report links. ``expect``: what
    the rollback was decided on, as for :func:`promote`; it is checked before the target is
    chosen, so the target always comes from the judged holder's history.
    """
    _check_environment(settings, environment)
    project = project_for(settings, project_name)
    spec = project.spec
    ledger = verified_ledger(settings, "rollback")
    who = resolve_actor(actor, settings.root) or "unknown"
    if not reason.strip():
        raise ModelopsError("rollback needs a reason: --reason TEXT")
    asked = None if to_version is None else str(to_version)
    holder, now = judged_io.holder_for_move(
        ledger, spec.name, environment, who, asked, expect, attempted="rollback"
    )
    if holder.version is None:
        raise ModelopsError(f"nothing holds {environment} for {spec.name}; nothing to roll back")
    if now is not None:
        past = now.earlier_holders
    else:
        past = [v for v in ledger.past_holders(spec.name, environment) if v != holder.version]
    if to_version is None:
        if not past:
            raise ModelopsError(
                f"v{holder.version} is the only version that ever held {environment}; "
                "there is nothing to roll back to"
            )
        target = past[0]
    else:
        target = str(to_version)
        if target == holder.version:
            raise ModelopsError(f"v{target} already holds {environment}")
        if target not in past:
            raise ModelopsError(
                f"v{target} never held {environment} (earlier holders: "
                f"{', '.join('v' + v for v in past) or 'none'}); rollback only returns to a "
                "version that served there"
            )
    entry = judged_io.swap(
        ledger,
        LedgerEntry(
            action="rollback",
            project=spec.name,
            environment=environment,
            actor=who,
            reason=reason.strip(),
            from_version=holder.version,
            to_version=target,
            details=dict(details or {}),
        ),
        holder,
        expect,
    )
    _sync_environment(settings, project, ledger, environment, "rolled back")
    return Move(spec.name, spec.registered_model, environment, holder.version, target, entry)


def history(
    settings: Settings, project_name: str | None, environment: str | None = None
) -> list[RecordedEntry]:
    """Ledger entries, oldest first, of one project (or all) and one environment (or all)."""
    if environment is not None:
        _check_environment(settings, environment)
    if project_name is not None:
        project_for(settings, project_name)
    entries = ledger_for(settings).entries(project_name)
    return [e for e in entries if environment is None or e.environment == environment]


def enable_hmac(settings: Settings) -> int:
    """Key the ledger's chain from the next entry on; returns that entry's seq (the embedded
    profile's key file is created when no key is configured)."""
    return ledger_for(settings, new_key=True).enable_hmac()


def anchor(settings: Settings) -> str:
    """The ledger's head, ``<seq>:<hash>``, to store where the database's writers cannot."""
    return ledger_for(settings).anchor()


@dataclass(frozen=True)
class LedgerCheck(Verification):
    """A verification plus ``deploys_pending``: one warning per environment promoted since its
    last GitOps deploy (not a problem: the deploy has not caught up yet)."""

    deploys_pending: list[str] = dataclasses.field(default_factory=list)


def verify(
    settings: Settings, project_name: str | None = None, expect_anchor: str | None = None
) -> LedgerCheck:
    """The ledger's own checks (chain, head, holder table, ``expect_anchor``), then every
    environment alias in MLflow and every GitOps values file against the ledger."""
    from modelops.config.project import available_projects
    from modelops.services.gitops_agreement import gitops_agrees

    result = ledger_for(settings).verify(expect_anchor)
    names = [project_name] if project_name else available_projects(settings.resolved_projects_dir)
    drift: list[str] = []
    pending: list[str] = []
    for name in names:
        agreement = gitops_agrees(settings, name)
        drift += agreement.problems
        pending += agreement.warnings
        try:
            drift += alias_drift(settings, name)
        except RegistryError:  # no registered model yet: nothing can have drifted
            continue
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    checked = LedgerCheck(**fields, deploys_pending=pending)
    if not drift:
        return checked
    return dataclasses.replace(checked, ok=False, problems=[*result.problems, *drift])


def holder_at(settings: Settings, project_name: str, environment: str, at: datetime) -> str | None:
    _check_environment(settings, environment)
    project = project_for(settings, project_name)
    return ledger_for(settings).holder_at(project.spec.name, environment, at)


def past_holders(settings: Settings, project_name: str, environment: str) -> list[str]:
    """Versions that served ``environment``, the current holder first: rollback targets."""
    _check_environment(settings, environment)
    project = project_for(settings, project_name)
    return ledger_for(settings).past_holders(project.spec.name, environment)


class AliasLagError(ModelopsError):
    """The ledger moved but MLflow could not be updated: the move stands, the alias lags."""

    exit_code = 3


def _ledger_holder(ledger: Ledger, project: str, environment: str) -> RecordedEntry | None:
    """The last promote or rollback of ``environment``: what the chain says serves there."""
    moves = [e for e in ledger.entries(project, environment) if e.action in ("promote", "rollback")]
    return moves[-1] if moves else None


def _sync_environment(
    settings: Settings,
    project: Project,
    ledger: Ledger,
    environment: str,
    done: str = "moved in the ledger",
) -> tuple[str | None, str | None] | None:
    """Point ``environment``'s alias (and tags) at the holder the ledger's chain records, from
    the ledger's state now (never from one remembered event), retrying MLflow failures.

    Returns ``(alias before, holder)`` when the alias moved, None when it was right.

    Raises:
        ModelopsError: the holder table disagrees with the chain (an out-of-band edit).
        AliasLagError: MLflow stayed unreachable; the ledger has moved, the alias has not.
    """
    from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

    name, project_name = project.spec.registered_model, project.spec.name
    last = _ledger_holder(ledger, project_name, environment)
    holder = last.to_version if last else None
    table = ledger.holder(project_name, environment).version
    if table != holder:
        raise ModelopsError(
            f"{project_name} {environment}: the holder table says "
            f"{'v' + table if table else 'nothing'} but the ledger's chain says "
            f"{'v' + holder if holder else 'nothing'}; run 'modelops history --verify' "
            "(an out-of-band edit?)"
        )

    @retry(
        retry=retry_if_exception_type(Exception),
        stop=stop_after_attempt(4),
        wait=wait_exponential(multiplier=0.5, max=4),
        reraise=True,
    )
    def apply() -> str | None:
        with mlflow_io.session(tracking(settings)) as client:
            before = mlflow_io.aliases(client, name).get(environment)
        if before == holder:
            return before
        if last is None:
            with mlflow_io.session(tracking(settings)) as client:
                mlflow_io.delete_alias(client, name, environment)
        else:
            _mirror_to_mlflow(settings, name, last)
        return before

    try:
        before = apply()
    except Exception as exc:
        raise AliasLagError(
            f"{done} ({project_name} {environment} = {'v' + holder if holder else 'nothing'}); "
            f"MLflow alias lags ({type(exc).__name__}), run 'modelops models sync {project_name}'"
        ) from exc
    return None if before == holder else (before, holder)


def sync_aliases(settings: Settings, project_name: str) -> dict[str, tuple[str | None, str | None]]:
    """Point each environment's MLflow alias back at the holder the ledger records.

    The ledger moves first and MLflow follows; when MLflow failed in between, the alias lags and
    the gate refuses to run. This repairs it (aliases and ``modelops.env.*`` tags) without
    writing to the ledger.

    Returns:
        ``{environment: (alias before, holder)}`` for every environment that was changed.
    """
    project = project_for(settings, project_name)
    ledger = verified_ledger(settings, "models sync")
    if ledger.head()[0] == 0:
        raise LedgerIntegrityError(
            "models sync refused: the ledger is empty, so it would unset every alias; restore "
            "the ledger from a backup first"
        )
    changed: dict[str, tuple[str | None, str | None]] = {}
    for environment in settings.environments:
        moved = _sync_environment(settings, project, ledger, environment)
        if moved is not None:
            changed[environment] = moved
    return changed


def alias_drift(settings: Settings, project_name: str) -> list[str]:
    """One line per environment whose MLflow alias is not the ledger's holder."""
    project = project_for(settings, project_name)
    ledger = ledger_for(settings)
    with mlflow_io.session(tracking(settings)) as client:
        current = mlflow_io.aliases(client, project.spec.registered_model)
    problems = []
    for environment in settings.environments:
        last = _ledger_holder(ledger, project.spec.name, environment)
        holder = last.to_version if last else None
        if current.get(environment) != holder:
            problems.append(
                f"{project.spec.name} {environment}: MLflow alias "
                f"{'v' + current[environment] if environment in current else 'unset'}, "
                f"ledger {'v' + holder if holder else 'nothing'}"
            )
    return problems


def holders(settings: Settings, project_name: str) -> dict[str, str | None]:
    """``{environment: version}`` currently serving, for every configured environment."""
    project = project_for(settings, project_name)
    ledger = ledger_for(settings)
    return {env: ledger.holder(project.spec.name, env).version for env in settings.environments}
