"""The ledger on a real PostgreSQL: compare-and-swap and chaining across processes, the
append-only trigger, and verify() once the trigger is gone."""

from __future__ import annotations

import itertools
import multiprocessing
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from modelops.core.errors import ConcurrentChangeError
from modelops.integrations.database import Holder, Ledger, LedgerEntry

pytestmark = pytest.mark.integration

PROJECT, ENV = "churn", "production"


# ------------------------------------------------------------------ workers (spawned processes)


def cas_worker(url: str, version: str, expected: Holder, barrier: Any, results: Any) -> None:
    """Waits for all its siblings, then tries to take the environment from ``expected``."""
    try:
        ledger = Ledger(url)
        ledger.holder(PROJECT, ENV)  # connect and set up before the race starts
        barrier.wait(timeout=60)
        ledger.transition(
            LedgerEntry(
                "promote",
                PROJECT,
                ENV,
                actor=f"worker-{version}",
                from_version=expected.version,
                to_version=version,
            ),
            expected=expected,
        )
        results.put(("won", version))
    except ConcurrentChangeError as error:
        results.put(("conflict", str(error)))
    except BaseException as error:  # reported to the parent, which fails the test
        results.put(("error", repr(error)))


def append_worker(url: str, name: str, count: int, barrier: Any, results: Any) -> None:
    """Waits for all its siblings, then appends ``count`` entries as fast as it can."""
    try:
        import psycopg  # noqa: F401  # imported up front so that first uses collide
        import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401

        ledger = Ledger(url)
        barrier.wait(timeout=60)  # first use races too: schema setup must be safe concurrently
        for i in range(count):
            ledger.append(LedgerEntry("validate", PROJECT, ENV, actor=name, details={"i": i}))
        results.put(("done", name))
    except BaseException as error:
        results.put(("error", repr(error)))


def run_processes(target: Any, argument_lists: list[tuple[Any, ...]]) -> list[tuple[str, str]]:
    """Runs ``target`` in one spawned process per argument tuple, released together."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(argument_lists))
    results = context.Queue()
    processes = [
        context.Process(target=target, args=(*arguments, barrier, results))
        for arguments in argument_lists
    ]
    for process in processes:
        process.start()
    try:
        collected = [results.get(timeout=120) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    errors = [detail for kind, detail in collected if kind == "error"]
    assert not errors, errors
    return collected


# ------------------------------------------------------------------ fixtures


@pytest.fixture
def url(postgres_database_factory: Callable[[str], str]) -> str:
    return postgres_database_factory("ledger")


def promote(ledger: Ledger, version: str, action: str = "promote") -> Any:
    current = ledger.holder(PROJECT, ENV)
    return ledger.transition(
        LedgerEntry(
            action, PROJECT, ENV, actor="alice", from_version=current.version, to_version=version
        ),
        expected=current,
    )


def execute(url: str, sql: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("held", [False, True], ids=["empty", "held"])
def test_parallel_promotions_have_exactly_one_winner(url: str, held: bool) -> None:
    ledger = Ledger(url)
    ledger.append(LedgerEntry("validate", PROJECT, ENV, actor="ci"))
    if held:
        promote(ledger, "1")
    start = ledger.holder(PROJECT, ENV)
    before = len(ledger.entries())
    contenders = [str(10 + i) for i in range(6)]

    results = run_processes(cas_worker, [(url, version, start) for version in contenders])

    winners = [detail for kind, detail in results if kind == "won"]
    conflicts = [detail for kind, detail in results if kind == "conflict"]
    assert len(winners) == 1, results
    assert len(conflicts) == 5
    (winner,) = winners
    assert all(f"now held by v{winner} (revision {start.revision + 1})" in c for c in conflicts)
    assert ledger.holder(PROJECT, ENV) == Holder(winner, start.revision + 1)
    recorded = ledger.entries()
    assert len(recorded) == before + 1
    assert (recorded[-1].action, recorded[-1].to_version) == ("promote", winner)
    assert ledger.verify().ok, ledger.verify().problems


def test_parallel_appends_chain_without_forking(url: str) -> None:
    writers, each = 4, 25
    run_processes(append_worker, [(url, f"writer-{i}", each) for i in range(writers)])

    ledger = Ledger(url)
    recorded = ledger.entries()
    assert len(recorded) == writers * each
    assert [e.seq for e in recorded] == list(range(1, writers * each + 1))
    assert [e.prev_hash for e in recorded[1:]] == [e.hash for e in recorded[:-1]]
    assert all(a.at < b.at for a, b in itertools.pairwise(recorded))
    for i in range(writers):
        assert [e.details["i"] for e in recorded if e.actor == f"writer-{i}"] == list(range(each))
    verification = ledger.verify()
    assert verification.ok, verification.problems
    assert verification.checked == writers * each


def test_round_trip_and_history(url: str) -> None:
    ledger = Ledger(url)
    first = ledger.append(
        LedgerEntry(
            "validate",
            PROJECT,
            ENV,
            actor="ci",
            to_version="1",
            verdict_id="v-1",
            details={"auc": 0.91, "gates": ["auc"]},
        )
    )
    one, two = promote(ledger, "1"), promote(ledger, "2")
    back = promote(ledger, "1", action="rollback")

    assert Ledger(url).entries()[0] == first  # microseconds and timezone survive timestamptz
    tick = timedelta(microseconds=1)
    assert ledger.holder_at(PROJECT, ENV, one.at - tick) is None
    assert ledger.holder_at(PROJECT, ENV, two.at - tick) == "1"
    assert ledger.holder_at(PROJECT, ENV, back.at - tick) == "2"
    assert ledger.holder_at(PROJECT, ENV, back.at) == "1"
    assert ledger.past_holders(PROJECT, ENV) == ["1", "2"]
    assert ledger.holder(PROJECT, ENV) == Holder("1", 3)


def test_the_ledger_table_is_append_only(url: str) -> None:
    from sqlalchemy.exc import DBAPIError

    ledger = Ledger(url)
    ledger.append(LedgerEntry("validate", PROJECT, ENV, actor="ci", reason="original"))
    Ledger(url).entries()  # a second setup leaves the single trigger in place

    for sql in (
        "UPDATE modelops_ledger SET reason = 'rewritten'",
        "DELETE FROM modelops_ledger",
        "TRUNCATE modelops_ledger",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            execute(url, sql)
    assert [e.reason for e in ledger.entries()] == ["original"]
    assert ledger.verify().ok


def test_verify_detects_an_edit_after_the_trigger_is_dropped(url: str) -> None:
    ledger = Ledger(url)
    for i in range(4):
        ledger.append(LedgerEntry("validate", PROJECT, ENV, actor="ci", reason=f"run {i}"))

    execute(url, "DROP TRIGGER modelops_ledger_append_only ON modelops_ledger")
    execute(url, "UPDATE modelops_ledger SET actor = 'mallory' WHERE seq = 2")
    execute(url, "DELETE FROM modelops_ledger WHERE seq = 4")

    verification = ledger.verify()
    assert not verification.ok
    assert verification.problems == [
        "entry 2: content does not match its hash (edited?)",
        "entry 4 missing at the end: the head records entry 4 (deleted?)",
    ]
