"""The promotion rules alone: facts in, the first broken rule out (no ledger, no registry)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from modelops.core import promotion as rules

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _facts(**changes: object) -> rules.PromotionFacts:
    verdict = rules.VerdictFacts(
        verdict_id="abc123",
        passed=True,
        error=None,
        failed_rules=[],
        made_at=NOW - timedelta(days=1),
        actor="ci",
        judged_against="3",
        artifact_sha256="f" * 64,
        git_commit="0" * 40,
        signed=True,
    )
    facts = rules.PromotionFacts(
        project="fraud",
        version="4",
        environment="production",
        holder="3",
        below="staging",
        held_below=True,
        verdict=verdict,
        verdict_max_age_days=7,
        now=NOW,
        artifact_sha256="f" * 64,
        trusted_branch=None,
        commit_on_branch=None,
        approval=rules.ApprovalFacts(
            required=True,
            approve=True,
            approver="reviewer",
            reason="lower cost",
            allow_self_approval=False,
            trained_by="alice",
        ),
    )
    verdict_changes = {k[8:]: v for k, v in changes.items() if k.startswith("verdict_")}
    approval_changes = {k[9:]: v for k, v in changes.items() if k.startswith("approval_")}
    rest = {k: v for k, v in changes.items() if not k.startswith(("verdict_", "approval_"))}
    if verdict_changes:
        rest["verdict"] = dataclasses.replace(verdict, **verdict_changes)
    if approval_changes:
        rest["approval"] = dataclasses.replace(facts.approval, **approval_changes)
    return dataclasses.replace(facts, **rest)


def test_a_fresh_signed_passing_verdict_with_an_approval_may_move() -> None:
    assert rules.refusal(_facts()) is None


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"holder": "4"}, "v4 already holds production"),
        (
            {"verdict_passed": False, "verdict_failed_rules": ["a", "b"]},
            "verdict abc123 failed: a; b",
        ),
        ({"verdict_passed": False, "verdict_error": "boom"}, "could not evaluate (boom)"),
        ({"held_below": False}, "v4 never held staging; promote it there first"),
        ({"verdict": None}, "run 'modelops validate fraud 4 --against production'"),
        ({"verdict_made_at": NOW - timedelta(days=8)}, "expired after 7 days"),
        ({"artifact_sha256": "e" * 64}, "is not the one verdict abc123 judged"),
        ({"trusted_branch": "main", "commit_on_branch": False}, "not a clean commit on 'main'"),
        ({"verdict_judged_against": None}, "compared with the baseline (empty environment)"),
        ({"verdict_signed": False}, "carries no valid signature"),
        ({"approval_approve": False}, "production needs an explicit approval"),
        ({"approval_approver": None}, "approval needs an approver"),
        ({"approval_reason": "  "}, "approval needs a reason"),
        ({"approval_approver": "alice"}, "alice trained v4 and cannot also approve it"),
        ({"approval_approver": "ci"}, "ci validated v4 and cannot also approve it"),
        # the same person however the name is written: case, spaces, with or without e-mail
        ({"approval_approver": "CI"}, "CI validated v4 and cannot also approve it"),
        (
            {
                "approval_trained_by": "Alice Martin <alice@example.com>",
                "approval_approver": "alice martin",
            },
            "alice martin trained v4",
        ),
        (
            {
                "approval_trained_by": "Alice Martin <Alice@Example.com>",
                "approval_approver": "alice@example.com",
            },
            "alice@example.com trained v4",
        ),
        (
            {"approval_approvers": ("Bob <bob@example.com>", "carol")},
            "reviewer is not an approver of production",
        ),
        (
            {"rolled_back_at": NOW - timedelta(hours=1)},
            "v4 was rolled back out of production at 2026-03-01 11:00 UTC, after verdict abc123",
        ),
    ],
)
def test_each_rule_refuses_with_its_reason(changes: dict[str, object], said: str) -> None:
    reason = rules.refusal(_facts(**changes))
    assert reason is not None and said in reason


def test_a_missing_approval_names_approver_when_the_default_approver_would_be_refused() -> None:
    """Whoever runs promote (the default approver) validated v4: the first refusal already says
    that someone else must approve, instead of a second refusal after --approve."""
    reason = rules.refusal(_facts(approval_approve=False, approval_approver="ci"))
    assert reason == (
        "production needs an explicit approval by someone who neither trained nor validated "
        "v4: --approve --approver NAME --reason TEXT"
    )
    plain = "production needs an explicit approval: --approve --reason TEXT"
    assert rules.refusal(_facts(approval_approve=False)) == plain
    allowed = _facts(
        approval_approve=False, approval_approver="ci", approval_allow_self_approval=True
    )
    assert rules.refusal(allowed) == plain


def test_rules_that_cannot_be_proved_either_way_do_not_refuse() -> None:
    assert rules.refusal(_facts(verdict_signed=None)) is None  # no ledger key
    assert rules.refusal(_facts(below=None, held_below=False)) is None  # first environment
    assert rules.refusal(_facts(approval_required=False, approval_approve=False)) is None
    assert rules.refusal(_facts(approval_allow_self_approval=True, approval_approver="ci")) is None


def test_listed_approvers_match_however_they_are_written() -> None:
    listed = ("Reviewer <rev@example.com>", "dana")
    assert rules.refusal(_facts(approval_approvers=listed)) is None  # "reviewer" by name
    assert (
        rules.refusal(_facts(approval_approvers=listed, approval_approver="REV@example.com"))
        is None
    )
    assert rules.refusal(_facts(approval_approvers=listed, approval_approver=" Dana ")) is None
    assert rules.refusal(_facts(approval_approvers=listed, approval_approver="nobody-at-all"))


def test_a_verdict_made_after_the_rollback_promotes_again() -> None:
    facts = _facts(rolled_back_at=NOW - timedelta(days=2))  # the verdict is a day old
    assert rules.refusal(facts) is None


def test_a_self_approval_refusal_says_how_to_name_another_approver() -> None:
    reason = rules.refusal(_facts(approval_approver="alice"))
    assert reason is not None and "--approver" in reason


@pytest.mark.parametrize(
    "changes",
    [
        {"placeholder_costs": True},  # project.yaml sets no costs today
        {"verdict_placeholder_costs": True},  # the verdict or the threshold rested on them
    ],
)
def test_placeholder_costs_are_refused_in_the_last_environment_in_one_line(
    changes: dict[str, object],
) -> None:
    reason = rules.refusal(
        _facts(last_environment=True, project_file="projects/fraud/project.yaml", **changes)
    )
    assert reason is not None and "\n" not in reason
    assert reason.startswith("production needs the business's costs, not placeholders")
    assert "'costs: {false_negative: N, false_positive: N}' in projects/fraud/project.yaml" in (
        reason
    )


def test_placeholder_costs_may_reach_the_lower_environments() -> None:
    for changes in ({"placeholder_costs": True}, {"verdict_placeholder_costs": True}):
        lower = _facts(environment="staging", below="dev", last_environment=False, **changes)
        assert rules.refusal(lower) is None
    assert rules.refusal(_facts(last_environment=True)) is None  # the project's own costs


def test_the_first_broken_rule_is_the_one_reported() -> None:
    reason = rules.refusal(_facts(held_below=False, verdict_signed=False, approval_approve=False))
    assert reason == "v4 never held staging; promote it there first"


# --- automatic moves: what was judged ------------------------------------------------------------


def _head(seq: int, fill: str) -> str:
    return rules.move_head(seq, fill * 64)


def test_a_move_decided_on_the_current_state_may_happen() -> None:
    judged = rules.Expectation("6", _head(41, "a"))
    assert rules.judgement_changed("production", judged, judged) is None
    empty = rules.Expectation(None, rules.NO_MOVE_HEAD)
    assert (
        rules.judgement_changed("staging", empty, rules.Expectation(None, "0:" + "0" * 64)) is None
    )


def test_another_holder_since_the_judgement_refuses_the_move_naming_both_states() -> None:
    judged = rules.Expectation("6", _head(41, "a"))
    now = rules.Expectation("7", _head(43, "b"))
    assert rules.judgement_changed("production", judged, now) == (
        f"decided on v6 at head 41:{'a' * 12}; production is now held by v7 (head 43:{'b' * 12})"
    )
    emptied = rules.judgement_changed("staging", rules.Expectation(None, rules.NO_MOVE_HEAD), now)
    assert emptied is not None and emptied.startswith("decided on nothing at head 0:000000000000;")


def test_the_same_holder_after_a_move_away_and_back_still_refuses() -> None:
    judged = rules.Expectation("6", _head(41, "a"))
    back = rules.Expectation("6", _head(45, "c"))
    reason = rules.judgement_changed("production", judged, back)
    assert reason is not None and "has moved since (head 45:cccccccccccc)" in reason
    assert "held by v6 again" in reason


def test_a_malformed_head_cannot_be_expected() -> None:
    from modelops.core.errors import ConfigError

    with pytest.raises(ConfigError, match="not '<seq>:<64 hex digits>'"):
        rules.Expectation("6", "41:ab12")
