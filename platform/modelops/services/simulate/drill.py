"""The bad-model drill: a version that passes the gate on the holdout is promoted through every
environment up to the simulated one, with an approval and a reason that say it is a drill; the
traffic that follows is what makes it bad. The gate is never bypassed."""

from __future__ import annotations

from dataclasses import dataclass

from modelops.config.project import Project
from modelops.config.settings import Settings
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
    to ``environment`` (skipping environments it already held), on the platform's one promotion
    path (:func:`modelops.services.workflows.promotion.walk`); each move is deployed through
    GitOps where the environment is deployed (always the target), so GitOps keeps agreeing with
    the ledger everywhere it deploys.

    Raises:
        DrillRefusedError: the gate refused every offered version, or a promotion rule refused.
    """
    from modelops.services.deploy import is_deployed
    from modelops.services.promote import PromotionRefusedError
    from modelops.services.workflows import promotion

    name = project.spec.name

    def reason(version: str, *_: object) -> str:
        return (
            f"simulation: bad-model drill: v{version} is promoted on purpose ahead of "
            f"{traffic} traffic it was not trained for, to exercise the automatic rollback to "
            f"v{previous}; not a release"
        )

    def deployed(env: str, _: str) -> str | None:
        if env != environment and not is_deployed(settings, name, env):
            return None
        return promotion.deploy_reported(settings, name, env, actor)

    options = promotion.WalkOptions(
        target=environment,
        candidates=offered,
        reason=reason,
        actor=actor,
        approver=approver,
        skip_held=True,
        after_move=deployed,
    )
    try:
        walked = promotion.walk(settings, name, options)
    except PromotionRefusedError as exc:
        raise DrillRefusedError(f"{exc} (the refusal is in the ledger)") from exc
    if not walked.reached or walked.chosen is None:
        refused = "; ".join(
            f"v{g.version} against {g.environment} (verdict {g.verdict_id}: {g.failed or 'failed'})"
            for g in walked.refusals
        )
        raise DrillRefusedError(
            f"the gate refused {refused}; a drill never bypasses it: pass --bad-version "
            "with a version that passes the gate on the holdout"
        )
    version = walked.chosen
    moves = {m.environment: m.ledger_seq for m in walked.moves if m.ledger_seq is not None}
    verdicts = {g.environment: g.verdict_id for g in walked.gates if g.passed and g.verdict_id}
    target = next(m.after or "" for m in walked.moves if m.environment == environment)
    below = [
        f"{m.environment}: {m.after}"
        for m in walked.moves
        if m.after and m.environment != environment
    ]
    gitops = "; ".join([target, *below])
    return Drill(previous, version, trained, verdicts, moves, approver, reason(version), gitops)


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
