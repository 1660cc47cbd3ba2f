"""The ledger on SQLite (the shared suite in tests/ledger_suite.py) and its pure chain logic."""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledger_suite import *  # noqa: F403  # the suite, run here on SQLite
from ledger_suite import ENV, PROJECT, legacy_hash
from modelops.core import ledger as chain
from modelops.core.errors import ConfigError, ServiceUnavailableError
from modelops.integrations import database
from modelops.integrations.database import Holder, Ledger, LedgerEntry


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "platform.db"


@pytest.fixture
def url(db_path: Path) -> str:
    return f"sqlite:///{db_path}"


# ------------------------------------------------------------------ SQLite only


def test_importing_the_module_does_not_import_sqlalchemy_or_alembic() -> None:
    code = (
        "import sys, modelops.integrations.database as d; "
        "d.Ledger('sqlite:////nonexistent/dir/x.db'); "
        "assert 'sqlalchemy' not in sys.modules, 'sqlalchemy imported'; "
        "assert 'alembic' not in sys.modules, 'alembic imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_nothing_is_created_until_first_use(db_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{db_path}")
    assert not db_path.parent.exists()
    assert ledger.holder(PROJECT, ENV) == Holder(None, 0)
    assert db_path.is_file()


def test_entries_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown ledger action"):
        LedgerEntry("deploy", PROJECT, ENV, actor="a")
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        LedgerEntry("validate", PROJECT, ENV, actor="a", details={"when": datetime.now(UTC)})


def test_promotions_must_go_through_transition(url: str) -> None:
    ledger = Ledger(url)
    with pytest.raises(ValueError, match="transition"):
        ledger.append(LedgerEntry("promote", PROJECT, ENV, actor="a", to_version="1"))
    with pytest.raises(ValueError, match="from_version"):
        ledger.transition(
            LedgerEntry("promote", PROJECT, ENV, actor="a", from_version="7", to_version="8"),
            expected=Holder(None, 0),
        )
    assert ledger.entries() == []


def test_unreachable_database_is_a_service_error_without_password() -> None:
    ledger = Ledger("postgresql+psycopg://admin:s3cret@127.0.0.1:1/modelops")
    with pytest.raises(ServiceUnavailableError) as caught:
        ledger.holder(PROJECT, ENV)
    message = str(caught.value)
    assert "s3cret" not in message
    assert "127.0.0.1:1/modelops" in message
    assert "\n" not in message


def test_unusable_sqlite_location_is_a_service_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(ServiceUnavailableError, match="cannot create"):
        Ledger(f"sqlite:///{blocker}/platform.db").entries()


def test_a_pickled_ledger_keeps_its_key_and_timeout(url: str) -> None:
    copy = pickle.loads(pickle.dumps(Ledger(url, key=b"secret", lock_timeout_s=2.5)))
    assert (copy.url, copy.keyed, copy._lock_timeout_s) == (url, True, 2.5)
    assert "secret" not in repr(copy)


def test_a_schema_newer_than_the_code_is_one_clear_line(url: str, db_path: Path) -> None:
    import sqlite3

    Ledger(url).head()
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"UPDATE {database.VERSION_TABLE} SET version_num = '0999'")
    with pytest.raises(ConfigError, match="schema revision 0999, which this modelops does not"):
        Ledger(url).head()


def test_the_known_revisions_are_the_migrations_shipped() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(database.MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    chain_of_revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert tuple(chain_of_revisions) == database.REVISIONS
    assert script.get_current_head() == database.HEAD_REVISION


# ------------------------------------------------------------------ core/ledger/ (pure)


def _recorded(**overrides: object) -> chain.RecordedEntry:
    fields: dict[str, object] = {
        "action": "validate",
        "project": "p",
        "environment": "e",
        "actor": "ci",
        "seq": 1,
        "at": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        "prev_hash": chain.GENESIS_HASH,
        "hash": "",
    }
    fields.update(overrides)
    return chain.RecordedEntry(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    ["plain", 'quotes " and \\ backslash', "é ü 中文 🙂", "\u2028\u2029 \x00\x1f\x7f", ""],
)
def test_the_hand_written_canonical_json_equals_json_dumps(text: str) -> None:
    entry = _recorded(
        reason=text,
        actor=text or "x",
        to_version=text,
        details={"nested": {"b": [1, 2.5, None, True], "a": text}, "n": 10**20},
    )
    row = {
        "seq": entry.seq,
        "at": entry.at,
        "action": entry.action,
        "project": entry.project,
        "environment": entry.environment,
        "actor": entry.actor,
        "reason": entry.reason,
        "from_version": entry.from_version,
        "to_version": entry.to_version,
        "verdict_id": entry.verdict_id,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
    }
    assert chain.entry_hash(entry) == legacy_hash(row)  # unkeyed: the pre-HMAC hash, unchanged
    assert json.loads(chain.entry_content(entry))["reason"] == text


def test_the_keyed_hash_is_hmac_of_prev_hash_and_content() -> None:
    import hmac

    entry = _recorded()
    content = chain.entry_content(entry).encode()
    expected = hmac.new(b"key", entry.prev_hash.encode() + content, hashlib.sha256).hexdigest()
    assert chain.entry_hash(entry, b"key") == expected
    assert chain.entry_hash(entry, b"key") != chain.entry_hash(entry)
    signed = _recorded(hash=expected)
    assert chain.is_signed(signed, b"key")
    assert not chain.is_signed(signed, b"other")
    assert not chain.is_signed(signed, None)


def _rows(count: int, key: bytes | None = None, **changes: object) -> list[chain.ChainRow]:
    rows, prev = [], chain.GENESIS_HASH
    for seq in range(1, count + 1):
        entry = _recorded(seq=seq, prev_hash=prev, **changes.get(seq, {}))  # type: ignore[arg-type]
        entry = chain.RecordedEntry(
            **{**entry.__dict__, "hash": chain.entry_hash(entry, key)}  # type: ignore[arg-type]
        )
        rows.append(
            chain.ChainRow(
                entry.seq,
                chain.format_time(entry.at),
                entry.action,
                entry.project,
                entry.environment,
                entry.actor,
                entry.reason,
                entry.from_version,
                entry.to_version,
                entry.verdict_id,
                chain.canonical(entry.details),
                entry.prev_hash,
                entry.hash,
            )
        )
        prev = entry.hash
    return rows


def test_verify_chain_streams_any_iterator_and_reports_its_anchor() -> None:
    rows = _rows(50, key=b"k")
    result = chain.verify_chain(
        iter(rows), head=(50, rows[-1].hash), holders={}, key=b"k", hmac_from=1
    )
    assert result.ok and result.checked == 50
    assert result.anchor == f"50:{rows[-1].hash}"
    without_key = chain.verify_chain(iter(rows), head=(50, rows[-1].hash), holders={})
    assert len(without_key.problems) == 50  # keyed hashes are not plain SHA-256


def test_verify_chain_caps_the_listed_problems() -> None:
    rows = [row._replace(reason="edited") for row in _rows(30)]
    result = chain.verify_chain(rows, head=(30, rows[-1].hash), holders={}, max_problems=10)
    assert not result.ok
    assert len(result.problems) == 11
    assert result.problems[-1] == "... and 20 more problem(s) not listed"


def test_holder_replay_counts_revisions_and_flags_broken_handovers() -> None:
    moves = [
        chain.ChainRow(1, "", "promote", "p", "prod", "a", "", None, "1", None, "{}", "", ""),
        chain.ChainRow(2, "", "validate", "p", "prod", "a", "", "1", "2", None, "{}", "", ""),
        chain.ChainRow(3, "", "promote", "p", "prod", "a", "", "1", "2", None, "{}", "", ""),
        chain.ChainRow(4, "", "rollback", "p", "prod", "a", "", "7", "1", None, "{}", "", ""),
        chain.ChainRow(5, "", "promote", "p", "dev", "a", "", None, "3", None, "{}", "", ""),
    ]
    replay = chain.HolderReplay()
    for move in moves:
        replay.feed(move)
    assert replay.holders == {("p", "prod"): Holder("1", 3), ("p", "dev"): Holder("3", 1)}
    assert replay.problems == [
        "entry 4: rollback of p/prod from v7, but the ledger's holder was v2"
    ]
    assert chain.compare_holders(replay.holders, replay.holders) == []
    assert chain.compare_holders({("p", "dev"): Holder("4", 1)}, {}) == [
        "holder of p/dev: modelops_environment says v4 (revision 1), the ledger says (nobody) "
        "(revision 0) (edited?)"
    ]


@pytest.mark.parametrize("anchor", ["", "5", "x:" + "0" * 64, "5:" + "0" * 63, "5:" + "G" * 64])
def test_malformed_anchors_are_config_errors(anchor: str) -> None:
    with pytest.raises(ConfigError, match="ledger anchor"):
        chain.parse_anchor(anchor)
    assert chain.parse_anchor("7:" + "a" * 64) == (7, "a" * 64)


def test_keys_are_checked_against_the_marker() -> None:
    marker = chain.hmac_marker(b"k", 4)
    chain.check_key(b"k", 4, marker)
    chain.check_key(None, None, None)
    with pytest.raises(chain.LedgerKeyError, match="set MODELOPS_LEDGER_KEY"):
        chain.check_key(None, 4, marker)
    with pytest.raises(chain.LedgerKeyError, match="not the key"):
        chain.check_key(b"other", 4, marker)
    with pytest.raises(chain.LedgerKeyError, match="not the key"):
        chain.check_key(b"k", 5, marker)  # hmac_from moved: the marker no longer fits
    assert chain.writing_key(b"k", None, None, 0) == (b"k", 1)
    assert chain.writing_key(None, None, None, 9) == (None, None)
    with pytest.raises(chain.LedgerKeyError, match="switch it to HMAC explicitly"):
        chain.writing_key(b"k", None, None, 9)
