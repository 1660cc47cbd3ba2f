"""The ledger on SQLite: hash chain, tamper detection, compare-and-swap, multi-process writers."""

from __future__ import annotations

import dataclasses
import itertools
import multiprocessing
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from modelops.core.errors import ConcurrentChangeError, ServiceUnavailableError
from modelops.integrations import database
from modelops.integrations.database import Holder, Ledger, LedgerEntry

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
        ledger = Ledger(url)
        ledger.holder(PROJECT, ENV)
        barrier.wait(timeout=60)
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
        collected = [results.get(timeout=90) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    errors = [detail for kind, detail in collected if kind == "error"]
    assert not errors, errors
    return collected


def race_for_environment(url: str, start: Holder, contenders: int) -> None:
    """Exactly one of ``contenders`` processes racing from ``start`` may win."""
    ledger = Ledger(url)
    before = len(ledger.entries())
    versions = [str(10 + i) for i in range(contenders)]
    results = run_processes(cas_worker, [(url, version, start) for version in versions])

    winners = [detail for kind, detail in results if kind == "won"]
    conflicts = [detail for kind, detail in results if kind == "conflict"]
    assert len(winners) == 1, results
    assert len(conflicts) == contenders - 1
    (winner,) = winners
    assert all(f"now held by v{winner} (revision {start.revision + 1})" in c for c in conflicts)
    assert ledger.holder(PROJECT, ENV) == Holder(winner, start.revision + 1)
    recorded = ledger.entries()
    assert len(recorded) == before + 1
    assert (recorded[-1].action, recorded[-1].to_version) == ("promote", winner)
    assert ledger.verify().ok, ledger.verify().problems


def concurrent_appends(url: str, writers: int, each: int) -> None:
    """``writers`` processes append ``each`` entries at once; the chain must not fork."""
    ledger = Ledger(url)
    before = len(ledger.entries())
    run_processes(append_worker, [(url, f"writer-{i}", each) for i in range(writers)])

    recorded = ledger.entries()
    assert len(recorded) == before + writers * each
    assert [e.seq for e in recorded] == list(range(1, len(recorded) + 1))
    assert [e.prev_hash for e in recorded[1:]] == [e.hash for e in recorded[:-1]]
    assert all(a.at < b.at for a, b in itertools.pairwise(recorded))
    for i in range(writers):
        mine = [e.details["i"] for e in recorded if e.actor == f"writer-{i}"]
        assert mine == list(range(each))
    verification = ledger.verify()
    assert verification.ok, verification.problems
    assert verification.checked == len(recorded)


# ------------------------------------------------------------------ fixtures and helpers


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "platform.db"


@pytest.fixture
def ledger(db_path: Path) -> Ledger:
    return Ledger(f"sqlite:///{db_path}")


def promote(ledger: Ledger, version: str, action: str = "promote") -> database.RecordedEntry:
    current = ledger.holder(PROJECT, ENV)
    return ledger.transition(
        LedgerEntry(
            action,
            PROJECT,
            ENV,
            actor="alice",
            from_version=current.version,
            to_version=version,
            reason=f"{action} to v{version}",
        ),
        expected=current,
    )


def fill(ledger: Ledger, count: int) -> None:
    for i in range(count):
        ledger.append(LedgerEntry("validate", PROJECT, ENV, actor="ci", reason=f"run {i}"))


def raw(db_path: Path, sql: str, *params: Any) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute(sql, params)


# ------------------------------------------------------------------ tests


def test_importing_the_module_does_not_import_sqlalchemy() -> None:
    code = (
        "import sys, modelops.integrations.database as d; "
        "d.Ledger('sqlite:////nonexistent/dir/x.db'); "
        "assert 'sqlalchemy' not in sys.modules, 'sqlalchemy imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_nothing_is_created_until_first_use(db_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{db_path}")
    assert not db_path.parent.exists()
    assert ledger.holder(PROJECT, ENV) == Holder(None, 0)
    assert db_path.is_file()


def test_append_and_read_back(ledger: Ledger) -> None:
    details = {"metrics": {"auc": 0.91, "n": 1200}, "gates": ["auc>=0.8", "latency"], "ok": True}
    first = ledger.append(
        LedgerEntry(
            "validate",
            PROJECT,
            ENV,
            actor="ci",
            reason="nightly",
            to_version="3",
            verdict_id="verdict-42",
            details=details,
        )
    )
    second = ledger.append(LedgerEntry("refuse", PROJECT, "staging", actor="bob", reason="no"))

    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == "0" * 64
    assert second.prev_hash == first.hash
    assert first.at.tzinfo is not None and first.at.utcoffset() == timedelta(0)
    assert ledger.entries() == [first, second]  # microseconds and details survive the round trip
    assert ledger.entries()[0].details == details
    assert ledger.entries(environment="staging") == [second]
    assert ledger.entries(project=PROJECT, environment=ENV) == [first]
    assert ledger.entries(project="other") == []
    verification = ledger.verify()
    assert verification == database.Verification(ok=True, checked=2, problems=[])


def test_entries_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown ledger action"):
        LedgerEntry("deploy", PROJECT, ENV, actor="a")
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        LedgerEntry("validate", PROJECT, ENV, actor="a", details={"when": datetime.now(UTC)})


def test_promotions_must_go_through_transition(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="transition"):
        ledger.append(LedgerEntry("promote", PROJECT, ENV, actor="a", to_version="1"))
    with pytest.raises(ValueError, match="from_version"):
        ledger.transition(
            LedgerEntry("promote", PROJECT, ENV, actor="a", from_version="7", to_version="8"),
            expected=Holder(None, 0),
        )
    assert ledger.entries() == []


def test_editing_a_row_is_detected_naming_the_seq(ledger: Ledger, db_path: Path) -> None:
    fill(ledger, 4)
    raw(db_path, "UPDATE modelops_ledger SET reason = 'nothing to see' WHERE seq = 3")

    verification = ledger.verify()
    assert not verification.ok
    assert verification.checked == 4
    assert verification.problems == ["entry 3: content does not match its hash (edited?)"]


def test_rewriting_a_row_with_a_matching_hash_still_breaks_the_chain(
    ledger: Ledger, db_path: Path
) -> None:
    fill(ledger, 4)
    forged = dataclasses.replace(ledger.entries()[1], reason="forged")
    raw(
        db_path,
        "UPDATE modelops_ledger SET reason = ?, hash = ? WHERE seq = 2",
        forged.reason,
        database._content_hash(forged),
    )

    problems = ledger.verify().problems
    assert len(problems) == 1
    assert problems[0].startswith("entry 3: prev_hash does not match the hash of entry 2")


def test_deleting_a_middle_row_is_detected(ledger: Ledger, db_path: Path) -> None:
    fill(ledger, 5)
    raw(db_path, "DELETE FROM modelops_ledger WHERE seq = 3")

    verification = ledger.verify()
    assert not verification.ok
    assert verification.problems == ["entry 3 missing before entry 4 (deleted?)"]


def test_deleting_the_last_rows_is_detected(ledger: Ledger, db_path: Path) -> None:
    fill(ledger, 5)
    raw(db_path, "DELETE FROM modelops_ledger WHERE seq = 5")
    assert ledger.verify().problems == [
        "entry 5 missing at the end: the head records entry 5 (deleted?)"
    ]
    raw(db_path, "DELETE FROM modelops_ledger WHERE seq = 4")
    assert ledger.verify().problems == [
        "entries 4-5 missing at the end: the head records entry 5 (deleted?)"
    ]


def test_first_promotion_then_a_stale_one_conflicts(ledger: Ledger) -> None:
    empty = ledger.holder(PROJECT, ENV)
    assert empty == Holder(None, 0)
    first = ledger.transition(
        LedgerEntry("promote", PROJECT, ENV, actor="alice", to_version="1"), expected=empty
    )
    assert ledger.holder(PROJECT, ENV) == Holder("1", 1)
    assert first.seq == 1

    # Someone validated against the empty environment before alice's promotion landed.
    with pytest.raises(ConcurrentChangeError) as stale_empty:
        ledger.transition(
            LedgerEntry("promote", PROJECT, ENV, actor="bob", to_version="2"), expected=empty
        )
    assert "now held by v1 (revision 1)" in str(stale_empty.value)

    held = ledger.holder(PROJECT, ENV)
    promote(ledger, "2")
    with pytest.raises(ConcurrentChangeError) as stale:
        ledger.transition(
            LedgerEntry("promote", PROJECT, ENV, actor="carol", from_version="1", to_version="3"),
            expected=held,
        )
    assert str(stale.value) == (
        f"{PROJECT}/{ENV} changed: v1 is now held by v2 (revision 2); "
        "validate against the new holder and retry"
    )
    assert ledger.holder(PROJECT, ENV) == Holder("2", 2)
    assert [e.to_version for e in ledger.entries()] == ["1", "2"]  # nothing written on conflict
    assert ledger.verify().ok


def test_environments_are_independent(ledger: Ledger) -> None:
    promote(ledger, "1")
    ledger.transition(
        LedgerEntry("promote", PROJECT, "staging", actor="a", to_version="5"),
        expected=Holder(None, 0),
    )
    assert ledger.holder(PROJECT, ENV) == Holder("1", 1)
    assert ledger.holder(PROJECT, "staging") == Holder("5", 1)
    assert ledger.holder("other", ENV) == Holder(None, 0)


@pytest.mark.parametrize("held", [False, True], ids=["empty", "held"])
def test_parallel_promotions_have_exactly_one_winner(db_path: Path, held: bool) -> None:
    url = f"sqlite:///{db_path}"
    ledger = Ledger(url)
    fill(ledger, 2)
    if held:
        promote(ledger, "1")
    race_for_environment(url, ledger.holder(PROJECT, ENV), contenders=6)


def test_parallel_appends_chain_without_forking(db_path: Path) -> None:
    url = f"sqlite:///{db_path}"
    Ledger(url).holder(PROJECT, ENV)
    concurrent_appends(url, writers=4, each=25)


def test_holder_at_follows_promotions_and_rollbacks(ledger: Ledger) -> None:
    fill(ledger, 1)
    one = promote(ledger, "1")
    ledger.append(LedgerEntry("approve", PROJECT, ENV, actor="bob", to_version="2"))
    two = promote(ledger, "2")
    back = promote(ledger, "1", action="rollback")
    ledger.transition(  # another environment does not leak in
        LedgerEntry("promote", PROJECT, "staging", actor="a", to_version="9"),
        expected=Holder(None, 0),
    )
    tick = timedelta(microseconds=1)
    assert one.at < two.at < back.at

    assert ledger.holder_at(PROJECT, ENV, one.at - tick) is None
    assert ledger.holder_at(PROJECT, ENV, one.at) == "1"
    assert ledger.holder_at(PROJECT, ENV, two.at - tick) == "1"
    assert ledger.holder_at(PROJECT, ENV, two.at) == "2"
    assert ledger.holder_at(PROJECT, ENV, back.at - tick) == "2"
    assert ledger.holder_at(PROJECT, ENV, back.at) == "1"
    assert ledger.holder_at(PROJECT, ENV, back.at + timedelta(days=365)) == "1"
    # Any timezone works; the instant is what counts.
    assert ledger.holder_at(PROJECT, ENV, two.at.astimezone(ZoneInfo("Asia/Tokyo"))) == "2"
    assert ledger.holder_at("other", ENV, back.at) is None
    with pytest.raises(ValueError, match="timezone-aware"):
        ledger.holder_at(PROJECT, ENV, datetime(2030, 1, 1))


def test_past_holders_most_recent_first(ledger: Ledger) -> None:
    assert ledger.past_holders(PROJECT, ENV) == []
    for version in ("1", "2", "3"):
        promote(ledger, version)
    promote(ledger, "2", action="rollback")
    assert ledger.holder(PROJECT, ENV) == Holder("2", 4)
    assert ledger.past_holders(PROJECT, ENV) == ["2", "3", "1"]


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
