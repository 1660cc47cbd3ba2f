"""The embedded profile keys its ledger by default: a key file (mode 0600) outside the database,
created on first use and reused; a configured key wins. With a key, a verdict forged with a
recomputed plain SHA-256 is refused, and so is a chain downgraded to plain entries.

The ledger state is written through the services' own handle (``services.context.ledger``), as
the gate and ``promote`` write it; no model is trained.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from ledger_suite import forge, rechain, tamper
from modelops.config.settings import Settings, load_settings
from modelops.core.errors import ConfigError
from modelops.core.ledger import LedgerIntegrityError
from modelops.integrations.database import Ledger, LedgerEntry
from modelops.services import promote as promote_service
from modelops.services.context import ledger as ledger_for
from modelops.services.context import ledger_key_file, verified_ledger
from support import REPO

PROJECT, ENV = "fraud", "staging"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in list(os.environ):
        if name.startswith("MODELOPS_"):
            monkeypatch.delenv(name)
    root = tmp_path / "repo"
    shutil.copytree(
        REPO / "projects", root / "projects", ignore=shutil.ignore_patterns("__pycache__")
    )
    return load_settings(root)


def _verdict(version: str, actor: str = "ci") -> LedgerEntry:
    return LedgerEntry(
        action="validate",
        project=PROJECT,
        environment=ENV,
        actor=actor,
        reason="passed every rule",
        to_version=version,
        verdict_id=f"verdict-{version}",
        details={"passed": True},
    )


def test_the_key_file_is_created_on_first_use_with_mode_0600_and_reused(
    settings: Settings,
) -> None:
    path = ledger_key_file(settings)
    assert path == settings.resolved_state_dir / "ledger.key" and not path.exists()
    ledger = ledger_for(settings)
    assert ledger.keyed and path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_bytes()
    entry = ledger.append(_verdict("3"))
    again = ledger_for(settings)
    assert path.read_bytes() == key and again.signed(entry)  # the same key, read back
    with pytest.raises(ConfigError, match="the ledger is HMAC-keyed"):
        Ledger(settings.platform_database_url).verify()  # the chain needs that key
    assert str(key.strip().decode()) not in repr(again)


def test_a_configured_key_wins_and_no_file_is_written(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELOPS_LEDGER_KEY", "k" * 32)
    configured = load_settings(settings.root)
    entry = ledger_for(configured).append(_verdict("3"))
    assert not ledger_key_file(configured).exists()
    assert Ledger(configured.platform_database_url, key=b"k" * 32).signed(entry)


def test_a_plain_ledger_from_before_the_key_stays_plain_until_switched(settings: Settings) -> None:
    settings.resolved_state_dir.mkdir(parents=True)
    Ledger(settings.platform_database_url).append(_verdict("3"))  # written before any key
    assert not ledger_for(settings).keyed and not ledger_key_file(settings).exists()
    verified_ledger(settings, "promote")
    assert promote_service.enable_hmac(settings) == 2  # the explicit switch makes the key file
    assert stat.S_IMODE(ledger_key_file(settings).stat().st_mode) == 0o600
    assert ledger_for(settings).signed(ledger_for(settings).append(_verdict("4")))
    verified_ledger(settings, "promote")


def test_a_key_file_others_can_read_is_refused(settings: Settings) -> None:
    ledger_for(settings)
    ledger_key_file(settings).chmod(0o644)
    with pytest.raises(ConfigError, match=r"ledger key file .* \(mode 0644\): chmod 600 it"):
        ledger_for(settings)


def test_a_forged_verdict_with_a_recomputed_sha256_is_refused(settings: Settings) -> None:
    ledger_for(settings).append(_verdict("3"))
    forge(settings.platform_database_url, _verdict("9", actor="mallory"))  # plain SHA-256
    with pytest.raises(LedgerIntegrityError, match="entry 2: HMAC does not match its content"):
        promote_service.promote(settings, PROJECT, "9", ENV)


def test_a_chain_downgraded_to_plain_entries_is_refused(settings: Settings) -> None:
    ledger = ledger_for(settings)
    ledger.append(_verdict("3"))
    ledger.append(_verdict("4"))
    rechain(settings.platform_database_url)  # every entry re-hashed with plain SHA-256
    tamper(
        settings.platform_database_url,
        "UPDATE modelops_ledger_head SET hmac_from = NULL, hmac_marker = NULL",
    )
    with pytest.raises(LedgerIntegrityError, match="the ledger is not HMAC-keyed: entries 1-2"):
        verified_ledger(settings, "promote")
