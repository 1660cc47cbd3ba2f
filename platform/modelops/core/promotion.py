"""The promotion rules: may ``version`` move into ``environment``, given the facts?

Pure: the promote service gathers the facts (ledger, registry, git) into a
:class:`PromotionFacts` and asks :func:`refusal` for the first rule it breaks. The rules run in
a fixed order, so the same facts always give the same one-line reason, and the order is the one
a person would check by hand: the move itself, the verdict, the environment order, the verdict's
freshness and provenance, the reference it judged against, then the approval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from modelops.core.identity import listed, same_person
from modelops.core.ledger import GENESIS_HASH, format_anchor, parse_anchor


@dataclass(frozen=True)
class VerdictFacts:
    """The latest recorded validation of the version against the environment."""

    verdict_id: str | None
    passed: bool
    error: str | None
    failed_rules: Sequence[str]
    made_at: datetime
    actor: str
    #: What the verdict compared with: the holder when it was made (None: empty environment).
    judged_against: str | None
    artifact_sha256: str | None
    git_commit: str | None
    #: None when the ledger has no key (nothing can be proved either way).
    signed: bool | None
    #: The verdict (or the candidate's threshold) rested on placeholder costs.
    placeholder_costs: bool = False


@dataclass(frozen=True)
class ApprovalFacts:
    """What an approval of the move would rest on; ``required`` False means none is needed."""

    required: bool
    approve: bool
    approver: str | None
    reason: str | None
    allow_self_approval: bool
    trained_by: str | None
    #: Who may approve in this environment (None: no list configured, anyone named may).
    approvers: tuple[str, ...] | None = None


@dataclass(frozen=True)
class PromotionFacts:
    project: str
    version: str
    environment: str
    holder: str | None
    #: The environment below (None for the first), and whether the version ever held it.
    below: str | None
    held_below: bool
    verdict: VerdictFacts | None
    verdict_max_age_days: float
    now: datetime
    artifact_sha256: str
    trusted_branch: str | None
    #: Whether the verdict's commit is a clean commit of ``trusted_branch`` (None: no branch).
    commit_on_branch: bool | None
    approval: ApprovalFacts
    #: When the version was last rolled back out of this environment (None: never).
    rolled_back_at: datetime | None = None
    #: The environment is the last of the promotion order (production): no placeholder costs.
    last_environment: bool = False
    #: ``project.yaml`` sets no ``costs`` today.
    placeholder_costs: bool = False
    #: Where the project's costs are set, for the refusal's wording.
    project_file: str = "project.yaml"


Rule = Callable[[PromotionFacts], str | None]


def _already_holds(f: PromotionFacts) -> str | None:
    return f"v{f.version} already holds {f.environment}" if f.holder == f.version else None


def _verdict_failed(f: PromotionFacts) -> str | None:
    v = f.verdict
    if v is None or v.passed:
        return None
    if v.error:
        return (
            f"the latest validation of v{f.version} could not evaluate ({v.error}); validate again"
        )
    return f"verdict {v.verdict_id} failed: " + "; ".join(v.failed_rules)


def _order(f: PromotionFacts) -> str | None:
    if f.below is None or f.held_below:
        return None
    return f"v{f.version} never held {f.below}; promote it there first"


def _no_verdict(f: PromotionFacts) -> str | None:
    if f.verdict is not None:
        return None
    return (
        f"no verdict for v{f.version} against {f.environment}; run 'modelops validate "
        f"{f.project} {f.version} --against {f.environment}'"
    )


def _placeholder_costs(f: PromotionFacts) -> str | None:
    assert f.verdict is not None
    if not f.last_environment or not (f.placeholder_costs or f.verdict.placeholder_costs):
        return None
    return (
        f"{f.environment} needs the business's costs, not placeholders: v{f.version} was judged "
        f"or trained with 1:1 placeholder costs; set 'costs: {{false_negative: N, "
        f"false_positive: N}}' in {f.project_file}, then train and validate again"
    )


def _expired(f: PromotionFacts) -> str | None:
    assert f.verdict is not None
    made = f.verdict.made_at
    if f.now - made <= timedelta(days=f.verdict_max_age_days):
        return None
    return (
        f"verdict {f.verdict.verdict_id} of {made:%Y-%m-%d %H:%M} UTC expired after "
        f"{f.verdict_max_age_days:g} days (promotion.verdict_max_age_days); validate again"
    )


def _artifact_changed(f: PromotionFacts) -> str | None:
    assert f.verdict is not None
    validated = f.verdict.artifact_sha256
    if validated and f.artifact_sha256 == validated:
        return None
    return (
        f"v{f.version}'s artifact is not the one verdict {f.verdict.verdict_id} judged: sha256 "
        f"{f.artifact_sha256} now, {validated or 'none'} when validated"
    )


def _untrusted_commit(f: PromotionFacts) -> str | None:
    assert f.verdict is not None
    if not f.trusted_branch or f.commit_on_branch:
        return None
    commit = f.verdict.git_commit or "unknown"
    return (
        f"verdict {f.verdict.verdict_id} was made from commit {commit[:12]}, which is not "
        f"a clean commit on '{f.trusted_branch}'; only verdicts recorded by "
        f"{f.trusted_branch}'s code allow a promotion"
    )


def _rolled_back_since(f: PromotionFacts) -> str | None:
    assert f.verdict is not None
    if f.rolled_back_at is None or f.verdict.made_at > f.rolled_back_at:
        return None
    return (
        f"v{f.version} was rolled back out of {f.environment} at "
        f"{f.rolled_back_at:%Y-%m-%d %H:%M} UTC, after verdict {f.verdict.verdict_id}; a version "
        "that was rolled back needs a fresh verdict: validate again"
    )


def _stale(f: PromotionFacts) -> str | None:
    assert f.verdict is not None
    judged = f.verdict.judged_against
    if judged == f.holder:
        return None
    held = f"v{f.holder}" if f.holder else "nothing"
    was = f"v{judged}" if judged else "the baseline (empty environment)"
    return (
        f"verdict {f.verdict.verdict_id} is stale: it compared with {was}, but "
        f"{f.environment} is now held by {held}; validate again"
    )


def _unsigned(f: PromotionFacts) -> str | None:
    assert f.verdict is not None
    if f.verdict.signed is None or f.verdict.signed:
        return None
    return (
        f"verdict {f.verdict.verdict_id} carries no valid signature under the ledger key: it "
        "was not written by the platform; validate again"
    )


def _involved(f: PromotionFacts) -> list[str]:
    """What the approver did to this version ("trained", "validated"): none, unless self-approval
    is allowed, for the approval to count."""
    a = f.approval
    assert f.verdict is not None
    if a.allow_self_approval or not a.approver:
        return []
    people = (("trained", a.trained_by), ("validated", f.verdict.actor))
    return [role for role, who in people if same_person(who, a.approver)]


def _approval(f: PromotionFacts) -> str | None:
    a = f.approval
    assert f.verdict is not None
    if not a.required:
        return None
    if not a.approve:
        if _involved(f):  # the approval would be refused next: say what it needs at once
            return (
                f"{f.environment} needs an explicit approval by someone who neither trained nor "
                f"validated v{f.version}: --approve --approver NAME --reason TEXT"
            )
        return f"{f.environment} needs an explicit approval: --approve --reason TEXT"
    if not a.approver:
        return "approval needs an approver: --approver, MODELOPS_ACTOR or git config user.name"
    if not (a.reason and a.reason.strip()):
        return "approval needs a reason: --reason TEXT"
    if a.approvers is not None and not listed(a.approver, a.approvers):
        return (
            f"{a.approver} is not an approver of {f.environment} (approvers: "
            f"{', '.join(a.approvers) or 'none'}; approvers.{f.environment} in modelops.yaml)"
        )
    involved = _involved(f)
    if not involved:
        return None
    return (
        f"{a.approver} {' and '.join(involved)} v{f.version} and cannot also approve it; "
        "a different person must approve: --approver NAME (or allow_self_approval in "
        "modelops.yaml)"
    )


#: In the order they are checked; the first that speaks refuses the move.
RULES: tuple[Rule, ...] = (
    _already_holds,
    _verdict_failed,
    _order,
    _no_verdict,
    _placeholder_costs,
    _expired,
    _artifact_changed,
    _untrusted_commit,
    _rolled_back_since,
    _stale,
    _unsigned,
    _approval,
)


def refusal(facts: PromotionFacts) -> str | None:
    """The reason the move is refused (the first rule broken), or None when it may happen."""
    for rule in RULES:
        reason = rule(facts)
        if reason is not None:
            return reason
    return None


# --- automatic moves: a compare-and-swap on what was judged -------------------------------------

#: The move head of an environment nobody ever moved.
NO_MOVE_HEAD = format_anchor(0, GENESIS_HASH)


def move_head(seq: int, hash_: str) -> str:
    """``"<seq>:<hash>"`` of an environment's last promote or rollback (its move head)."""
    return format_anchor(seq, hash_)


@dataclass(frozen=True)
class Expectation:
    """What an automatic move was decided on: the environment's holder, and its move head.

    The head is the ``"<seq>:<hash>"`` of the last promote or rollback of that project and
    environment (:data:`NO_MOVE_HEAD` when there was none), not of the whole ledger: a move of
    another project or environment, and the validations, refusals and alerts recorded in the
    meantime (among them the retraining's own verdicts) leave the decision standing; any move
    of the judged environment voids it, also one that brought the same holder back.

    Raises:
        ConfigError: ``head`` is not ``"<seq>:<64 hex digits>"``.
    """

    holder: str | None
    head: str

    def __post_init__(self) -> None:
        parse_anchor(self.head)


def _held(version: str | None) -> str:
    return f"v{version}" if version else "nothing"


def _short(head: str) -> str:
    seq, hash_ = parse_anchor(head)
    return f"{seq}:{hash_[:12]}"


def judgement_changed(environment: str, judged: Expectation, now: Expectation) -> str | None:
    """Why a move decided on ``judged`` may not happen in the state ``now`` (None: it may).

    Changed means another holder, or the same holder after a move (another head).
    """
    if judged == now:
        return None
    decided = f"decided on {_held(judged.holder)} at head {_short(judged.head)}"
    if judged.holder != now.holder:
        return (
            f"{decided}; {environment} is now held by {_held(now.holder)} (head {_short(now.head)})"
        )
    return (
        f"{decided}; {environment} has moved since (head {_short(now.head)}) and is held by "
        f"{_held(now.holder)} again"
    )
