"""Moves decided on a judged state (the holder and the environment's move head): refused and
recorded when the environment moved since, also between the check and the write. Ledger only:
every refusal happens before the registry is read."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from modelops.config.settings import Settings, load_settings
from modelops.core import promotion as rules
from modelops.integrations.database import Ledger, LedgerEntry
from modelops.services import judged, promote
from support import copy_workspace

PROJECT = "fraud"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    root = copy_workspace(tmp_path / "repo")
    (root / "modelops.yaml").write_text("environments: [staging, production]\n")
    for name in [n for n in os.environ if n.startswith("MODELOPS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("MODELOPS_ROOT", str(root))
    monkeypatch.setenv("MODELOPS_DATABASE_URL", f"sqlite:///{tmp_path / 'platform.db'}")
    monkeypatch.setenv("MODELOPS_ACTOR", "tester")
    return load_settings()


def _move(settings: Settings, version: str, actor: str = "setup") -> None:
    ledger = Ledger(settings.platform_database_url)
    held = ledger.holder(PROJECT, "production")
    ledger.transition(
        LedgerEntry("promote", PROJECT, "production", actor, "setup", held.version, version),
        expected=held,
    )


def _short(head: str) -> str:
    seq, _, hash_ = head.partition(":")
    return f"{seq}:{hash_[:12]}"


def _ledger(settings: Settings) -> Ledger:
    return Ledger(settings.platform_database_url)


def test_a_snapshot_is_the_holder_its_revision_and_the_head_of_its_last_move(
    settings: Settings,
) -> None:
    empty = judged.snapshot(_ledger(settings), PROJECT, "production")
    assert empty.expectation == rules.Expectation(None, rules.NO_MOVE_HEAD)
    for version in ("4", "6"):
        _move(settings, version)
    _ledger(settings).append(LedgerEntry("refuse", PROJECT, "production", "x", "noise"))
    _move(settings, "5")
    _ledger(settings).append(LedgerEntry("refuse", PROJECT, "staging", "x", "other env"))
    snap = judged.snapshot(_ledger(settings), PROJECT, "production")
    last = [e for e in _ledger(settings).entries(PROJECT) if e.action == "promote"][-1]
    assert snap.holder.version == "5" and snap.holder.revision == 3
    assert snap.head == f"{last.seq}:{last.hash}"  # the refusals after it do not count
    assert snap.earlier_holders == ["6", "4"]


def test_a_rollback_decided_on_v6_is_refused_after_a_person_promoted_v7(
    settings: Settings,
) -> None:
    for version in ("4", "6"):
        _move(settings, version)
    decided = judged.snapshot(_ledger(settings), PROJECT, "production")
    _move(settings, "7", actor="alice")  # a person, seconds later
    now = judged.snapshot(_ledger(settings), PROJECT, "production")

    with pytest.raises(promote.PromotionRefusedError) as refused:
        promote.rollback(
            settings,
            PROJECT,
            "production",
            reason="monitor: v6 on probation",
            actor="modelops-monitor",
            expect=decided.expectation,
        )

    assert str(refused.value) == (
        "rollback of production refused: decided on v6 at head "
        f"{_short(decided.head)}; production is now held by v7 (head {_short(now.head)})"
    )
    entries = _ledger(settings).entries(PROJECT, "production")
    assert [e.action for e in entries] == ["promote", "promote", "promote", "refuse"]
    refusal = entries[-1]
    assert refusal.actor == "modelops-monitor" and refusal.from_version == "7"
    assert refusal.details == {
        "attempted": "rollback",
        "judged": {"holder": "6", "head": decided.head},
        "current": {"holder": "7", "head": now.head},
    }
    assert _ledger(settings).holder(PROJECT, "production").version == "7"


def test_a_move_away_and_back_voids_the_decision_too(settings: Settings) -> None:
    for version in ("4", "6"):
        _move(settings, version)
    decided = judged.snapshot(_ledger(settings), PROJECT, "production").expectation
    _move(settings, "7")
    ledger = _ledger(settings)
    held = ledger.holder(PROJECT, "production")
    ledger.transition(
        LedgerEntry("rollback", PROJECT, "production", "bob", "back", "7", "6"), expected=held
    )
    with pytest.raises(promote.PromotionRefusedError, match="held by v6 again"):
        promote.rollback(
            settings, PROJECT, "production", reason="r", to_version="4", expect=decided
        )
    assert _ledger(settings).holder(PROJECT, "production").version == "6"


def test_a_person_promoting_between_the_check_and_the_write_loses_nothing_and_is_named(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check passes, then a person's promotion lands before the rollback's transaction: the
    compare-and-swap on the judged revision refuses it, with the judged wording."""
    for version in ("4", "6"):
        _move(settings, version)
    decided = judged.snapshot(_ledger(settings), PROJECT, "production")
    real = Ledger.transition

    def person_first(self: Ledger, entry: LedgerEntry, **kwargs: Any) -> Any:
        if entry.actor == "modelops-monitor":
            _move(settings, "7", actor="alice")
        return real(self, entry, **kwargs)

    monkeypatch.setattr(Ledger, "transition", person_first)
    with pytest.raises(promote.PromotionRefusedError, match="production is now held by v7"):
        promote.rollback(
            settings,
            PROJECT,
            "production",
            reason="monitor",
            actor="modelops-monitor",
            to_version="4",
            expect=decided.expectation,
        )
    entries = _ledger(settings).entries(PROJECT, "production")
    assert [(e.action, e.actor) for e in entries[-2:]] == [
        ("promote", "alice"),
        ("refuse", "modelops-monitor"),
    ]
    assert entries[-1].to_version == "4" and entries[-1].details["attempted"] == "rollback"
    assert not [e for e in entries if e.action == "rollback"]
    assert _ledger(settings).verify().ok


def test_a_promotion_decided_on_a_moved_environment_is_refused_before_anything_is_read(
    settings: Settings,
) -> None:
    _move(settings, "4")
    decided = judged.snapshot(_ledger(settings), PROJECT, "production").expectation
    _move(settings, "7")
    with pytest.raises(promote.PromotionRefusedError) as refused:
        promote.promote(settings, PROJECT, "9", "production", reason="retrained", expect=decided)
    assert str(refused.value).startswith(
        "promotion of v9 to production refused: decided on v4 at head "
    )
    assert _ledger(settings).entries(PROJECT)[-1].details["attempted"] == "promote"


def test_a_holder_table_that_disagrees_with_the_moves_decides_nothing(
    settings: Settings,
) -> None:
    _move(settings, "4")
    from ledger_suite import tampering

    with tampering(settings.platform_database_url) as conn:
        conn.exec_driver_sql("UPDATE modelops_environment SET version = '9'")
    with pytest.raises(Exception, match=r"the holder table says v9 .* ending at v4"):
        judged.snapshot(_ledger(settings), PROJECT, "production")


def test_a_verdicts_automatic_promotion_expects_the_state_the_verdict_judged(
    settings: Settings,
) -> None:
    """auto_promote_staging acts on a verdict: it expects the holder the verdict compared with,
    at the move head the verdict's entry follows; a move after the verdict voids it."""
    ledger = _ledger(settings)
    held = ledger.holder(PROJECT, "staging")
    ledger.transition(
        LedgerEntry("promote", PROJECT, "staging", "setup", "setup", held.version, "4"),
        expected=held,
    )
    ledger.append(
        LedgerEntry("validate", PROJECT, "staging", "ci", "passed", "4", "9", verdict_id="v-9")
    )
    judged_then = judged.snapshot(ledger, PROJECT, "staging").expectation
    assert judged.verdict_judged(ledger, PROJECT, "v-9", "staging") == judged_then

    held = ledger.holder(PROJECT, "staging")
    ledger.transition(
        LedgerEntry("promote", PROJECT, "staging", "bob", "by hand", "4", "7"), expected=held
    )
    expectation = judged.verdict_judged(ledger, PROJECT, "v-9", "staging")
    assert expectation == judged_then  # still what the verdict judged, not what holds now
    with pytest.raises(promote.PromotionRefusedError, match="staging is now held by v7"):
        promote.promote(settings, PROJECT, "9", "staging", expect=expectation)
    with pytest.raises(promote.PromotionRefusedError, match="not recorded in the ledger"):
        judged.verdict_judged(ledger, PROJECT, "v-unknown", "staging")
