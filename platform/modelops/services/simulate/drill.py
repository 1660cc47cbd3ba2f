"""The bad-model drill: a version that passes the gate on the holdout is promoted through every
environment up to the simulated one, with an approval and a reason that say it is a drill; the
traffic that follows is what makes it bad. The gate is never bypassed."""

from __future__ import annotations

from dataclasses import dataclass

from modelops.config.project import Project
from modelops.config.settings import Settings
from modelops.core.errors import ModelopsError
from modelops.services.context import approval_required
from modelops.services.context import ledger as ledger_for
from modelops.services.simulate.errors import DrillRefusedError, SimulationError

BAD_MODEL = "bad-model"
DRILL_TRAFFIC = ("healthy", "covariate-drift", "concept-drift")
DRILL_APPROVER = "modelops-simulate"
"""Who approves a drill's production promotion unless ``approver`` names someone: the ledger
then shows that a drill, not a person, approved it."""


@dataclass(frozen=True)
class Drill:
    """What the bad-model drill did in the ledger."""

    previous_version: str
    bad_version: str
    trained: bool
    verdicts: dict[str, str]
    """environment → id of the passing verdict that allowed the move."""
    moves: dict[str, int]
    """environment → ledger seq of the promotion."""
    approver: str
    reason: str
    gitops: str = ""
    """What the GitOps deploy of the version did (a commit, or why there is none)."""


def _deploy(settings: Settings, project: str, environment: str, actor: str | None) -> str:
    """The GitOps commit of the new holder, as after any promotion (``modelops deploy``), so
    that the rollback has a commit to undo; a failure is reported, never raised (the ledger is
    the truth, and ``modelops deploy`` writes the commit later)."""
    from modelops.services import deploy

    try:
        result = deploy.deploy(settings, project, environment, actor=actor)
    except ModelopsError as exc:
        return f"GitOps not updated ({exc}); run 'modelops deploy {project} --env {environment}'"
    return f"GitOps commit {result.commit[:12]}" if result.commit else "GitOps already up to date"


def _offered(
    settings: Settings, project: Project, previous: str, bad_version: str | None
) -> list[str]:
    """The versions the drill offers the gate, in order: ``bad_version``, or both versions of
    a fresh training run, the candidate first (the gate lets at most one through when it
    compares them with the same holder)."""
    from modelops.services import train

    if bad_version is not None:
        return [str(bad_version)]
    # Trained as the holder was (its windows, its training time), so the gate judges it on the
    # same holdout and it can pass; what makes it bad is the traffic that follows.
    from modelops.services.monitor import read_lineage

    held = read_lineage(settings, project, previous)
    result = train.train(settings, project.spec.name, as_of=held.as_of, windows=held.windows)
    return [result.candidate.version, result.baseline.version]


def promote_through_environments(
    settings: Settings,
    project: Project,
    environment: str,
    offered: list[str],
    previous: str,
    traffic: str,
    approver: str,
    actor: str | None,
    trained: bool,
) -> Drill:
    """Gate, then promote, the first offered version that passes through each environment up
    to ``environment`` (skipping environments it already held), then deploy it through GitOps.

    Raises:
        DrillRefusedError: the gate refused every offered version, or a promotion rule refused.
    """
    from modelops.services import gate, promote

    spec = project.spec
    ledger = ledger_for(settings)
    required = approval_required(settings, project)
    order = list(settings.environments)
    refusals: list[str] = []
    for version in offered:
        reason = (
            f"simulation: bad-model drill: v{version} is promoted on purpose ahead of "
            f"{traffic} traffic it was not trained for, to exercise the automatic rollback to "
            f"v{previous}; not a release"
        )
        verdicts: dict[str, str] = {}
        moves: dict[str, int] = {}
        for env in order[: order.index(environment) + 1]:
            if env != environment and version in ledger.past_holders(spec.name, env):
                continue
            verdict = gate.validate(settings, spec.name, version, against=env, actor=actor)
            if not verdict.passed:
                refusals.append(
                    f"v{version} against {env} (verdict {verdict.id}: "
                    f"{', '.join(verdict.failed_rules) or 'failed'})"
                )
                break
            verdicts[env] = verdict.id
            needs = env in required
            try:
                move = promote.promote(
                    settings,
                    spec.name,
                    version,
                    env,
                    approve=needs,
                    approver=approver if needs else actor,
                    reason=reason,
                )
            except promote.PromotionRefusedError as exc:
                raise DrillRefusedError(f"{exc} (the refusal is in the ledger)") from exc
            moves[env] = move.entry.seq
        else:
            gitops = _deploy(settings, spec.name, environment, actor)
            from modelops.services.deploy import is_deployed

            below = [e for e in moves if e != environment and is_deployed(settings, spec.name, e)]
            for env in below:  # GitOps keeps agreeing with the ledger everywhere it deploys
                gitops += f"; {env}: {_deploy(settings, spec.name, env, actor)}"
            return Drill(previous, version, trained, verdicts, moves, approver, reason, gitops)
        if moves:  # already promoted somewhere: never switch versions half-way
            break
    raise DrillRefusedError(
        f"the gate refused {'; '.join(refusals)}; a drill never bypasses it: pass --bad-version "
        "with a version that passes the gate on the holdout"
    )


def drill(
    settings: Settings,
    project: Project,
    environment: str,
    traffic: str,
    bad_version: str | None,
    approver: str,
    actor: str | None,
) -> Drill:
    """Put a version into ``environment`` the way every version gets there: gate, approval,
    ledger. Raises :class:`DrillRefusedError` when the gate or a promotion rule refuses."""
    spec = project.spec
    previous = ledger_for(settings).holder(spec.name, environment).version
    if previous is None:
        raise SimulationError(
            f"--scenario {BAD_MODEL}: nothing holds {environment} for {spec.name}; promote a good "
            "version first, so that the drill has one to roll back to"
        )
    offered = _offered(settings, project, previous, bad_version)
    if previous in offered:
        raise SimulationError(
            f"--bad-version {previous}: already holds {environment}; the drill needs another"
        )
    return promote_through_environments(
        settings,
        project,
        environment,
        offered,
        previous,
        traffic,
        approver,
        actor,
        trained=bad_version is None,
    )
