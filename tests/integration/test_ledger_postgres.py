"""The ledger on a real PostgreSQL: the shared suite (tests/ledger_suite.py) plus what only
PostgreSQL has: TRUNCATE, per-transaction timeouts, and verify() once the trigger is gone."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ledger_suite import *  # noqa: F403  # the suite, run here on PostgreSQL
from ledger_suite import ENV, KEY, PROJECT, casual, fill, tamper
from modelops.integrations.database import Ledger, LedgerEntry

pytestmark = pytest.mark.integration


@pytest.fixture
def url(postgres_database_factory: Callable[[str], str]) -> str:
    return postgres_database_factory("ledger")


def test_verify_detects_an_edit_after_the_trigger_is_dropped(url: str) -> None:
    ledger = Ledger(url)
    fill(ledger, 4)
    casual(url, "DROP TRIGGER modelops_ledger_append_only ON modelops_ledger")
    casual(url, "UPDATE modelops_ledger SET actor = 'mallory' WHERE seq = 2")
    casual(url, "DELETE FROM modelops_ledger WHERE seq = 4")

    verification = ledger.verify()
    assert not verification.ok
    assert verification.problems == [
        "entry 2: content does not match its hash (edited?)",
        "entry 4 missing at the end: the head records entry 4 (deleted?)",
    ]


def test_timeouts_and_the_writer_pass_last_one_transaction(url: str) -> None:
    ledger = Ledger(url, lock_timeout_s=2)
    ledger.append(LedgerEntry("validate", PROJECT, ENV, actor="ci"))
    with ledger._db.write() as conn:
        settings = conn.exec_driver_sql(
            "SELECT current_setting('lock_timeout'), current_setting('statement_timeout'), "
            "current_setting('modelops.writer', true)"
        ).one()
    assert tuple(settings) == ("2s", "2s", "ledger")
    with ledger._db.read() as conn:
        settings = conn.exec_driver_sql(
            "SELECT current_setting('lock_timeout'), current_setting('modelops.writer', true)"
        ).one()
    assert tuple(settings) == ("2s", "")
    engine = ledger._db.engine()
    with engine.connect() as conn:  # a pooled connection, outside the ledger's transactions
        settings = conn.exec_driver_sql(
            "SELECT current_setting('lock_timeout'), current_setting('modelops.writer', true)"
        ).one()
    assert settings[0] == "0"
    assert settings[1] in (None, "")


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        ("UPDATE modelops_ledger SET actor = 'mallory' WHERE seq = 2", "entry 2: HMAC does not"),
        ("DELETE FROM modelops_ledger WHERE seq = 2", "entry 2 missing before entry 3"),
    ],
)
def test_a_superuser_edit_before_the_checkpoint_forces_a_full_replay(
    url: str, tmp_path: Path, statement: str, problem: str
) -> None:
    """Rows before the checkpoint are not re-read, but an edit or deletion behind the triggers
    (replication role) moves the ledger table's statistics: the next verification is full."""
    ledger = Ledger(url, key=KEY)
    fill(ledger, 4)
    kept = tmp_path / "ledger.checkpoint"
    assert ledger.verified(kept).checked == 4
    assert ledger.verified(kept).checked == 1
    tamper(url, statement)
    result = Ledger(url, key=KEY).verified(kept)
    assert not result.ok and problem in result.problems[0]


@pytest.fixture
def plain_role_url(url: str) -> Iterator[str]:
    """A login role that is granted every DML privilege on the ledger's tables but owns none."""
    import uuid

    from sqlalchemy import make_url

    role = f"modelops_plain_{uuid.uuid4().hex[:8]}"
    Ledger(url).head()  # the schema, migrated by its owner
    casual(url, f'CREATE ROLE "{role}" LOGIN')
    casual(url, f'GRANT USAGE ON SCHEMA public TO "{role}"')
    casual(url, f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"')
    try:
        yield make_url(url).set(username=role).render_as_string(hide_password=False)
    finally:
        casual(url, f'DROP OWNED BY "{role}"')
        casual(url, f'DROP ROLE "{role}"')


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE modelops_ledger_head SET last_seq = 0",
        "UPDATE modelops_environment SET version = '1'",
        "INSERT INTO modelops_environment VALUES ('churn', 'dev', '7', 1, '2030-01-01')",
        "INSERT INTO modelops_ledger (seq, at, action, project, environment, actor, reason, "
        "details, prev_hash, hash) VALUES (99, now(), 'validate', 'churn', 'dev', 'mallory', '', "
        "'{}', repeat('0', 64), repeat('0', 64))",
        "UPDATE modelops_ledger SET actor = 'mallory'",
    ],
)
def test_a_plain_dml_role_cannot_lift_the_guards(
    url: str, plain_role_url: str, statement: str
) -> None:
    from sqlalchemy.exc import DBAPIError

    ledger = Ledger(url)
    fill(ledger, 2)
    ledger.transition(
        LedgerEntry("promote", PROJECT, ENV, "ci", "ok", None, "1"),
        expected=ledger.holder(PROJECT, ENV),
    )
    before = (ledger.entries(), ledger.head(), ledger.holder(PROJECT, ENV))
    with pytest.raises(DBAPIError, match="rejected"):
        casual(plain_role_url, f"SET LOCAL modelops.writer = 'ledger'; {statement}")
    assert (ledger.entries(), ledger.head(), ledger.holder(PROJECT, ENV)) == before
    assert ledger.verify().ok
    ledger.append(LedgerEntry("validate", PROJECT, ENV, actor="ci"))  # the owner still writes
