"""The bad-model drill: a genuinely worse version that still passes the gate on the holdout is
promoted through every environment up to the simulated one, with an approval and a reason that
say it is a drill. By default it is trained as the holder was but with features broken in the
rows it learns from (:class:`~modelops.core.sabotage.BrokenFeatures`): what it cannot read is
what the traffic that follows needs. A copy of the holder (same artifact) is refused. The gate
is never bypassed."""

from __future__ import annotations

from dataclasses import dataclass

from modelops.config.project import Project
from modelops.config.settings import Settings
from modelops.core import tags
from modelops.core.sabotage import BrokenFeatures
from modelops.services.context import ledger as ledger_for
from modelops.services.simulate.errors import DrillRefusedError, SimulationError

BAD_MODEL = "bad-model"
DRILL_TRAFFIC = ("healthy", "covariate-drift", "concept-drift")
DRILL_APPROVER = "modelops-simulate"
"""Who approves a drill's production promotion unless ``approver`` names someone: the ledger
then shows that a drill, not a person, approved it."""
DRILL_FEATURES_ATTRIBUTE = "DRILL_BROKEN_FEATURES"
"""The optional name in a project's ``data.py``: the features a drill breaks by default (the
ones its drift scenarios make matter), a tuple of feature names."""
DRILL_CAP_ATTRIBUTE = "DRILL_BROKEN_CAP"
"""The optional name in ``data.py``: those default features are capped at it (a saturating
counter) rather than zeroed. Not applied to features named with ``--break-feature``."""


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
    broken: tuple[str, ...] = ()
    """The features the drill's training broke (empty for ``--bad-version``)."""
    broken_how: str = ""
    """How they were broken (``written as 0``, ``capped at 2``)."""


def broken_features(project: Project, named: tuple[str, ...]) -> BrokenFeatures:
    """``named`` (``--break-feature``), else the project's ``data.py``
    :data:`DRILL_FEATURES_ATTRIBUTE`; SimulationError when neither names one."""
    from modelops.services.simulate.period import load_module

    if named:
        return BrokenFeatures(tuple(str(f) for f in named))
    module = load_module(project)
    chosen = tuple(getattr(module, DRILL_FEATURES_ATTRIBUTE, ()))
    if not chosen:
        raise SimulationError(
            f"--scenario {BAD_MODEL}: no feature to break; pass --break-feature NAME, or set "
            f"{DRILL_FEATURES_ATTRIBUTE} in {project.directory / 'data.py'}, or --bad-version"
        )
    cap = getattr(module, DRILL_CAP_ATTRIBUTE, None)
    return BrokenFeatures(tuple(str(f) for f in chosen), None if cap is None else int(cap))


def _offered(
    settings: Settings,
    project: Project,
    previous: str,
    bad_version: str | None,
    broken: BrokenFeatures | None,
) -> list[str]:
    """The versions the drill offers the gate, in order: ``bad_version``, or both versions of
    a fresh training run with ``broken`` features, the candidate first (the gate lets at most
    one through when it compares them with the same holder)."""
    from modelops.services import train

    if bad_version is not None:
        return [str(bad_version)]
    assert broken is not None
    # Trained as the holder was (its windows, its training time), so the gate judges it on the
    # same holdout, but with features broken in the rows it learns from: the holdout, where
    # other features carry the signal, may not show it; traffic that needs them does.
    from modelops.services.monitor import read_lineage

    held = read_lineage(settings, project, previous)
    result = train.train(
        settings, project.spec.name, as_of=held.as_of, windows=held.windows, sabotage=broken
    )
    return [result.candidate.version, result.baseline.version]


def refuse_copies(settings: Settings, project: Project, previous: str, offered: list[str]) -> None:
    """SimulationError when an offered version's artifact is the holder's (same sha256): a
    rollback to it would swap in the same model. A version without the tag cannot be told
    apart and is refused too."""
    from modelops.integrations import mlflow as mlflow_io
    from modelops.services.context import tracking

    name = project.spec.registered_model
    with mlflow_io.session(tracking(settings)) as client:
        digests = {
            v: (mlflow_io.get_version(client, name, v).tags or {}).get(tags.ARTIFACT_SHA256, "")
            for v in (previous, *offered)
        }
    for version in offered:
        if not digests[version] or not digests[previous]:
            unknown = version if not digests[version] else previous
            raise SimulationError(
                f"v{unknown} carries no {tags.ARTIFACT_SHA256}: the drill cannot tell whether "
                f"v{version} is a copy of v{previous}"
            )
        if digests[version] == digests[previous]:
            raise SimulationError(
                f"v{version} has the artifact of v{previous} (sha256 "
                f"{digests[version][:12]}): a copy, not a bad model; the drill needs a version "
                "that differs"
            )


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
    broken: BrokenFeatures | None = None,
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
        how = f", {broken.describe()}," if broken is not None else ""
        return (
            f"simulation: bad-model drill: v{version}{how} is promoted on purpose ahead of "
            f"{traffic} traffic it was not trained for, to exercise the automatic rollback to "
            f"v{previous}; not a release"
        )

    def deployed(env: str, version: str) -> str | None:
        if env != environment and not is_deployed(settings, name, env):
            return None
        return promotion.deploy_reported(settings, name, env, actor, package_version=version)

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
    features = broken.features if broken is not None else ()
    how = broken.how() if broken is not None else ""
    return Drill(
        previous,
        version,
        trained,
        verdicts,
        moves,
        approver,
        reason(version),
        gitops,
        features,
        how,
    )


def drill(
    settings: Settings,
    project: Project,
    environment: str,
    traffic: str,
    bad_version: str | None,
    approver: str,
    actor: str | None,
    break_features: tuple[str, ...] = (),
) -> Drill:
    """Put a version into ``environment`` the way every version gets there: gate, approval,
    ledger. Raises :class:`DrillRefusedError` when the gate or a promotion rule refuses, and
    SimulationError for a copy of the holder or options that do not fit."""
    spec = project.spec
    if bad_version is not None and break_features:
        raise SimulationError(
            "--break-feature trains the drill's version, --bad-version names one: pass one"
        )
    previous = ledger_for(settings).holder(spec.name, environment).version
    if previous is None:
        raise SimulationError(
            f"--scenario {BAD_MODEL}: nothing holds {environment} for {spec.name}; promote a good "
            "version first, so that the drill has one to roll back to"
        )
    if bad_version is not None and str(bad_version) == previous:
        raise SimulationError(
            f"--bad-version {previous}: already holds {environment}; the drill needs another"
        )
    broken = broken_features(project, break_features) if bad_version is None else None
    offered = _offered(settings, project, previous, bad_version, broken)
    refuse_copies(settings, project, previous, offered)
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
        broken=broken,
    )
