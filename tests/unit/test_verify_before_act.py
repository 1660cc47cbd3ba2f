"""Every command that acts on the ledger replays it first and refuses a ledger that does not verify.

promote, rollback, deploy, models sync, package and serve go through
``services.context.verified_ledger``: a row edit, a middle deletion, a tail truncation (caught
against the last verified checkpoint, although the chain left behind is consistent) and a
holder-table edit each block every one of them, in one line naming the failure. A wiped ledger
never makes ``models sync`` unset the aliases.

The ledger state is written directly (a passing verdict, then the promotion), as the gate and
``promote`` record them, so no model is trained; the refusals come before MLflow is asked.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from test_deploy import package

from ledger_suite import tamper
from modelops.config.settings import Settings, load_settings
from modelops.core.ledger import GENESIS_HASH, LedgerIntegrityError
from modelops.integrations.database import Ledger, LedgerEntry
from modelops.services import deploy as deploy_service
from modelops.services import package as package_service
from modelops.services import promote as promote_service
from modelops.services import serve as serve_service
from modelops.services.context import checkpoint_file, verified_ledger
from modelops.services.context import ledger as ledger_for
from support import REPO

PROJECT, ENV = "fraud", "production"
SHA = {"3": "3" * 12 + "a" * 52, "4": "4" * 12 + "b" * 52}


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Embedded settings in a fresh root holding the repository's projects, git unconfigured."""
    for name in list(os.environ):
        if name.startswith("MODELOPS_"):
            monkeypatch.delenv(name)
    empty = tmp_path / "gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    root = tmp_path / "repo"
    shutil.copytree(
        REPO / "projects", root / "projects", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(REPO / "charts" / "model-service", root / "charts" / "model-service")
    return load_settings(root)


def _promote(settings: Settings, version: str) -> None:
    """A passing verdict and the promotion it allows, as the gate and ``promote`` record them."""
    ledger = ledger_for(settings)
    holder = ledger.holder(PROJECT, ENV)
    verdict = ledger.append(
        LedgerEntry(
            action="validate",
            project=PROJECT,
            environment=ENV,
            actor="ci",
            reason="passed every rule",
            from_version=holder.version,
            to_version=version,
            verdict_id=f"verdict-{version}",
            details={"passed": True, "candidate_artifact_sha256": SHA[version]},
        )
    )
    ledger.transition(
        LedgerEntry(
            action="promote",
            project=PROJECT,
            environment=ENV,
            actor="alice",
            reason="passed the gate",
            from_version=holder.version,
            to_version=version,
            verdict_id=verdict.verdict_id,
        ),
        expected=holder,
    )


@pytest.fixture
def served(settings: Settings) -> Settings:
    """v3 then v4 promoted to production (entries 1-4), v4's signed release recorded (entry 5,
    as ``package`` records it) and deployed: a verified checkpoint."""
    settings.resolved_state_dir.mkdir(parents=True, exist_ok=True)
    _promote(settings, "3")
    _promote(settings, "4")
    assert package(settings, PROJECT, "4") is not None
    deploy_service.deploy(settings, PROJECT, ENV, actor="bob")
    assert checkpoint_file(settings).exists()
    return settings


def _url(settings: Settings) -> str:
    return settings.platform_database_url


def _row_edit(settings: Settings) -> str:
    tamper(_url(settings), "UPDATE modelops_ledger SET reason = 'edited' WHERE seq = 1")
    return "entry 1: HMAC does not match its content"  # keyed by default


def _middle_deletion(settings: Settings) -> str:
    tamper(_url(settings), "DELETE FROM modelops_ledger WHERE seq = 2")
    return "entry 2 missing before entry 3"


def _tail_truncation(settings: Settings) -> str:
    """Entries 3 to 5 cut, the head and the holder table moved back to match: a consistent
    chain that only the checkpoint (entry 5 verified) contradicts."""
    second = ledger_for(settings).entries()[1]
    tamper(
        _url(settings),
        "DELETE FROM modelops_ledger WHERE seq > 2",
        f"UPDATE modelops_ledger_head SET last_seq = 2, last_hash = '{second.hash}'",
        "UPDATE modelops_environment SET version = '3', revision = 1",
    )
    assert ledger_for(settings).verify().ok  # nothing left in the database shows it
    return "entry 5 is missing"


def _holder_edit(settings: Settings) -> str:
    tamper(_url(settings), "UPDATE modelops_environment SET version = '3'")
    return "holder of fraud/production: modelops_environment says v3"


TAMPERS: dict[str, Callable[[Settings], str]] = {
    "row edit": _row_edit,
    "middle deletion": _middle_deletion,
    "tail truncation": _tail_truncation,
    "holder-table edit": _holder_edit,
}

ACTIONS: dict[str, Callable[[Settings], object]] = {
    "promote": lambda s: promote_service.promote(s, PROJECT, "3", ENV, approve=True),
    "rollback": lambda s: promote_service.rollback(s, PROJECT, ENV, reason="latency"),
    "deploy": lambda s: deploy_service.deploy(s, PROJECT, ENV),
    "models sync": lambda s: promote_service.sync_aliases(s, PROJECT),
    "package": lambda s: package_service.package(s, PROJECT, "4", environment=ENV),
    "serve": lambda s: serve_service.plan_serve(s, PROJECT, ENV),
}


@pytest.mark.parametrize("tampered", TAMPERS)
def test_each_tamper_blocks_each_action(served: Settings, tampered: str) -> None:
    expected = TAMPERS[tampered](served)
    entries_before = len(Ledger(_url(served)).entries())
    for action, act in ACTIONS.items():
        with pytest.raises(LedgerIntegrityError) as refused:
            act(served)
        message = str(refused.value)
        assert message.startswith(f"{action} refused: the ledger does not verify: "), message
        assert expected in message and "\n" not in message
    assert len(Ledger(_url(served)).entries()) == entries_before  # nothing was written


def test_a_reload_of_the_running_service_is_refused_on_a_tampered_ledger(
    served: Settings, tmp_path: Path
) -> None:
    plan = serve_service.ServePlan(
        project=PROJECT,
        environment=ENV,
        version="4",
        bento_tag="modelops-fraud:v4",
        store=package_service.bento_store(served),
        server_env={},
        packaged=None,
        pointer=tmp_path / "serving" / "current.json",
    )
    expected = _holder_edit(served)  # the table now names v3: the service must not swap it in
    reload = serve_service.follow_promotion(served, plan, current="4")
    assert reload is not None and reload.staged is None and reload.version == "3"
    assert reload.error is not None
    assert reload.error.startswith("reload to v3 refused: the ledger does not verify: ")
    assert expected in reload.error
    assert not plan.pointer.exists()


def test_a_wiped_ledger_never_makes_models_sync_unset_the_aliases(served: Settings) -> None:
    tamper(
        _url(served),
        "DELETE FROM modelops_ledger",
        "DELETE FROM modelops_environment",
        f"UPDATE modelops_ledger_head SET last_seq = 0, last_hash = '{GENESIS_HASH}'",
    )
    with pytest.raises(LedgerIntegrityError, match="entry 5 is missing"):
        promote_service.sync_aliases(served, PROJECT)
    checkpoint_file(served).unlink()  # no trace of the ledger that was: still no sync
    with pytest.raises(LedgerIntegrityError, match=r"^models sync refused: the ledger is empty"):
        promote_service.sync_aliases(served, PROJECT)


def test_verification_after_the_first_replays_only_what_was_appended(served: Settings) -> None:
    ledger = ledger_for(served)
    first = ledger.verified(checkpoint_file(served))
    assert first.ok and first.checked == 1  # the checkpoint's entry, re-checked
    _promote(served, "3")
    again = ledger.verified(checkpoint_file(served))
    assert again.ok and again.checked == 3 and again.anchor == ledger.anchor()
    checkpoint_file(served).unlink()
    full = ledger.verified(checkpoint_file(served))
    assert full.ok and full.checked == 7


def test_a_row_edited_after_the_checkpoint_is_caught_incrementally(served: Settings) -> None:
    _promote(served, "3")  # entries 6 and 7, after the checkpoint at entry 5
    tamper(_url(served), "UPDATE modelops_ledger SET actor = 'mallory' WHERE seq = 7")
    with pytest.raises(LedgerIntegrityError, match="entry 7: HMAC does not match its content"):
        verified_ledger(served, "rollback")
