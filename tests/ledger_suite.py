"""The ledger's behaviour on any database, written once and run on SQLite and PostgreSQL.

``tests/unit/test_ledger.py`` (SQLite) and ``tests/integration/test_ledger_postgres.py``
(PostgreSQL) each define a ``url`` fixture (a fresh, empty database) and import the tests below
with ``from ledger_suite import *``. Raw SQL goes through two helpers:

- :func:`casual` runs a statement as anyone with the database URL would (the guards apply);
- :func:`tampering` is someone who bypasses the guards (PostgreSQL superuser:
  ``session_replication_role = replica``; SQLite: drop the triggers, put them back after).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import multiprocessing
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from modelops.core import ledger as chain
from modelops.core.errors import ConcurrentChangeError, ConfigError, ModelopsError
from modelops.integrations import database
from modelops.integrations.database import (
    Holder,
    HolderChangedError,
    Ledger,
    LedgerEntry,
    LedgerIntegrityError,
    LedgerKeyError,
    LedgerLockedError,
    RecordedEntry,
)

PROJECT, ENV = "churn", "production"
KEY = b"k" * 32


# ------------------------------------------------------------------ raw access


def _engine(url: str) -> Any:
    from sqlalchemy import create_engine, make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return create_engine(url)


def casual(url: str, sql: str) -> None:
    """Run ``sql`` in its own transaction, as anyone holding the database URL could."""
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


def _text(sql: str) -> Any:
    from sqlalchemy import text

    return text(sql)


@contextmanager
def tampering(url: str) -> Iterator[Any]:
    """A connection that bypasses the guards; everything done in it is committed at the end."""
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                triggers = conn.exec_driver_sql(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
                ).all()
                for name, _ in triggers:
                    conn.exec_driver_sql(f"DROP TRIGGER {name}")
            else:
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            yield conn
            if conn.dialect.name == "sqlite":
                for _, sql in triggers:
                    conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


def tamper(url: str, *statements: str) -> None:
    with tampering(url) as conn:
        for sql in statements:
            conn.exec_driver_sql(sql)


def forge(
    url: str, entry: LedgerEntry, *, key: bytes | None = None, prev: tuple[int, str] | None = None
) -> RecordedEntry:
    """Append ``entry`` behind the ledger's back, hashed like the ledger would, and move the head.

    Without ``key`` this is what anyone able to write the database can do to a plain chain.
    """
    from sqlalchemy import insert, select, update

    _, ledger_table, _, head = database.schema.tables()
    with tampering(url) as conn:
        if prev is None:
            last_seq, last_hash = conn.execute(
                select(head.c.last_seq, head.c.last_hash).where(head.c.id == 1)
            ).one()
        else:
            last_seq, last_hash = prev
        unsigned = RecordedEntry(
            **{f.name: getattr(entry, f.name) for f in dataclasses.fields(LedgerEntry)},
            seq=last_seq + 1,
            at=datetime.now(UTC),
            prev_hash=last_hash,
            hash="",
        )
        forged = dataclasses.replace(unsigned, hash=chain.entry_hash(unsigned, key))
        values = {f.name: getattr(forged, f.name) for f in dataclasses.fields(forged)}
        values["details"] = chain.canonical(forged.details)
        conn.execute(insert(ledger_table).values(**values))
        conn.execute(
            update(head).where(head.c.id == 1).values(last_seq=forged.seq, last_hash=forged.hash)
        )
    return forged


def rechain(url: str, *, keep: int | None = None) -> None:
    """Rewrite the whole chain consistently with plain SHA-256 (keeping the first ``keep`` rows,
    dropping the rest), head included: what an attacker without the key can do to any chain."""
    from sqlalchemy import delete, select, update

    _, ledger_table, _, head = database.schema.tables()
    with tampering(url) as conn:
        rows = conn.execute(select(ledger_table).order_by(ledger_table.c.seq)).all()
        conn.execute(delete(ledger_table))
        conn.execute(update(head).values(last_seq=0, last_hash=chain.GENESIS_HASH))
    prev = (0, chain.GENESIS_HASH)
    for row in rows[:keep]:
        forged = forge(
            url,
            LedgerEntry(
                row.action,
                row.project,
                row.environment,
                row.actor,
                row.reason,
                row.from_version,
                row.to_version,
                row.verdict_id,
                json.loads(row.details),
            ),
            prev=prev,
        )
        prev = (forged.seq, forged.hash)
    tamper(url, "UPDATE modelops_ledger_head SET hmac_from = NULL, hmac_marker = NULL")


# ------------------------------------------------------------------ workers (spawned processes)


def cas_worker(
    url: str, version: str, expected: Holder, barrier: Any, results: Any
) -> None:  # pragma: no cover - runs in a child process
    """Enters transition() from ``expected`` and waits there for every sibling before going on.

    The hook runs after transition() checked its arguments and before its write transaction
    starts: once the barrier opens, every contender holds the same stale ``expected`` and none has
    committed, so the compare-and-swap is what decides. (A barrier inside the transaction would
    deadlock: the head lock admits one writer at a time.)
    """
    reached = threading.Event()

    def at_the_swap() -> None:
        reached.set()
        barrier.wait(timeout=60)

    try:
        ledger = Ledger(url)
        ledger.holder(PROJECT, ENV)  # connect and migrate before the race starts
        ledger._before_swap = at_the_swap
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
            preceding=[LedgerEntry("approve", PROJECT, ENV, actor="boss", to_version=version)],
        )
        results.put(("won", version, reached.is_set()))
    except ConcurrentChangeError as error:
        results.put(("conflict", str(error), reached.is_set()))
    except BaseException as error:  # reported to the parent, which fails the test
        results.put(("error", repr(error), reached.is_set()))


def append_worker(
    url: str, name: str, count: int, barrier: Any, results: Any
) -> None:  # pragma: no cover - runs in a child process
    """Waits for all its siblings, then appends ``count`` entries as fast as it can.

    The first use (schema migration) races too: it must be safe concurrently.
    """
    try:
        import sqlalchemy  # noqa: F401  # imported up front so that first uses collide

        ledger = Ledger(url)
        barrier.wait(timeout=60)
        for i in range(count):
            ledger.append(LedgerEntry("validate", PROJECT, ENV, actor=name, details={"i": i}))
        results.put(("done", name, True))
    except BaseException as error:
        results.put(("error", repr(error), False))


def run_processes(target: Any, argument_lists: list[tuple[Any, ...]]) -> list[tuple[str, str]]:
    """Runs ``target`` in one spawned process per argument tuple; (kind, detail) per process."""
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
        collected = [results.get(timeout=180) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    errors = [detail for kind, detail, _ in collected if kind == "error"]
    assert not errors, errors
    assert all(reached for _, _, reached in collected), "a contender never reached the swap"
    return [(kind, detail) for kind, detail, _ in collected]


# ------------------------------------------------------------------ helpers


def promote(ledger: Ledger, version: str, action: str = "promote") -> RecordedEntry:
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


def fill(ledger: Ledger, count: int) -> list[RecordedEntry]:
    return [
        ledger.append(LedgerEntry("validate", PROJECT, ENV, actor="ci", reason=f"run {i}"))
        for i in range(count)
    ]


def passed_verdict(version: str = "9") -> LedgerEntry:
    return LedgerEntry(
        "validate",
        PROJECT,
        ENV,
        actor="ci",
        reason="passed every rule",
        to_version=version,
        verdict_id="forged-1",
        details={"passed": True, "failed_rules": []},
    )


# ------------------------------------------------------------------ behaviour


def test_append_and_read_back(url: str) -> None:
    details = {"metrics": {"auc": 0.91, "n": 1200}, "gates": ["auc>=0.8", "latency"], "ok": True}
    ledger = Ledger(url)
    first = ledger.append(
        LedgerEntry(
            "validate",
            PROJECT,
            ENV,
            actor="ci",
            reason='nightly "quoted" é \u2028 \x01',
            to_version="3",
            verdict_id="verdict-42",
            details=details,
        )
    )
    second = ledger.append(LedgerEntry("refuse", PROJECT, "staging", actor="bob", reason="no"))

    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == "0" * 64
    assert second.prev_hash == first.hash
    assert first.hash == chain.entry_hash(first)
    assert first.at.tzinfo is not None and first.at.utcoffset() == timedelta(0)
    assert Ledger(url).entries() == [first, second]  # microseconds and details survive
    assert ledger.entries(environment="staging") == [second]
    assert ledger.entries(project=PROJECT, environment=ENV) == [first]
    assert ledger.entries(project="other") == []
    assert ledger.head() == (2, second.hash)
    assert ledger.anchor() == f"2:{second.hash}"
    assert ledger.verify() == chain.Verification(
        ok=True, checked=2, problems=[], anchor=f"2:{second.hash}", keyed_from=None
    )


def test_an_empty_ledger_has_a_genesis_head_and_verifies(url: str) -> None:
    ledger = Ledger(url)
    assert ledger.head() == (0, chain.GENESIS_HASH)
    verification = ledger.verify(anchor=ledger.anchor())
    assert verification.ok and verification.checked == 0, verification.problems


def test_first_promotion_then_a_stale_one_conflicts(url: str) -> None:
    ledger = Ledger(url)
    empty = ledger.holder(PROJECT, ENV)
    assert empty == Holder(None, 0)
    first = ledger.transition(
        LedgerEntry("promote", PROJECT, ENV, actor="alice", to_version="1"), expected=empty
    )
    assert ledger.holder(PROJECT, ENV) == Holder("1", 1)
    assert first.seq == 1

    with pytest.raises(ConcurrentChangeError) as stale_empty:
        ledger.transition(
            LedgerEntry("promote", PROJECT, ENV, actor="bob", to_version="2"), expected=empty
        )
    assert "now held by v1 (revision 1)" in str(stale_empty.value)
    assert isinstance(stale_empty.value, HolderChangedError)
    assert stale_empty.value.current == Holder("1", 1)
    assert stale_empty.value.expected == empty

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


def test_environments_are_independent(url: str) -> None:
    ledger = Ledger(url)
    promote(ledger, "1")
    ledger.transition(
        LedgerEntry("promote", PROJECT, "staging", actor="a", to_version="5"),
        expected=Holder(None, 0),
    )
    assert ledger.holder(PROJECT, ENV) == Holder("1", 1)
    assert ledger.holder(PROJECT, "staging") == Holder("5", 1)
    assert ledger.holder("other", ENV) == Holder(None, 0)
    assert ledger.verify().ok


def test_holder_at_follows_promotions_and_rollbacks(url: str) -> None:
    ledger = Ledger(url)
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
    assert ledger.holder_at(PROJECT, ENV, two.at.astimezone(ZoneInfo("Asia/Tokyo"))) == "2"
    assert ledger.holder_at("other", ENV, back.at) is None
    with pytest.raises(ValueError, match="timezone-aware"):
        ledger.holder_at(PROJECT, ENV, datetime(2030, 1, 1))
    for version in ("3",):
        promote(ledger, version)
    assert ledger.past_holders(PROJECT, ENV) == ["3", "1", "2"]
    assert ledger.holder(PROJECT, ENV) == Holder("3", 4)


# ------------------------------------------------------------------ races


@pytest.mark.parametrize("held", [False, True], ids=["empty", "held"])
def test_parallel_promotions_have_exactly_one_winner(url: str, held: bool) -> None:
    """Six processes enter transition() from the same holder; all wait at the swap, then go."""
    ledger = Ledger(url)
    fill(ledger, 2)
    if held:
        promote(ledger, "1")
    start = ledger.holder(PROJECT, ENV)
    before = len(ledger.entries())
    contenders = [str(10 + i) for i in range(6)]

    results = run_processes(cas_worker, [(url, version, start) for version in contenders])

    winners = [detail for kind, detail in results if kind == "won"]
    conflicts = [detail for kind, detail in results if kind == "conflict"]
    assert len(winners) == 1, results
    assert len(conflicts) == len(contenders) - 1, results
    (winner,) = winners
    assert all(f"now held by v{winner} (revision {start.revision + 1})" in c for c in conflicts)
    assert ledger.holder(PROJECT, ENV) == Holder(winner, start.revision + 1)
    recorded = ledger.entries()
    # the winner's approval and move, nothing of the losers'
    assert [(e.action, e.to_version) for e in recorded[before:]] == [
        ("approve", winner),
        ("promote", winner),
    ]
    verification = ledger.verify()
    assert verification.ok, verification.problems


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


# ------------------------------------------------------------------ approval + move, atomically


def test_approval_and_move_are_written_together(url: str) -> None:
    ledger = Ledger(url)
    fill(ledger, 1)
    approval = LedgerEntry("approve", PROJECT, ENV, actor="boss", reason="ok", to_version="1")
    move = ledger.transition(
        LedgerEntry("promote", PROJECT, ENV, actor="alice", to_version="1", verdict_id="v-1"),
        expected=Holder(None, 0),
        preceding=[approval],
    )
    entries = ledger.entries()
    assert [(e.seq, e.action) for e in entries] == [(1, "validate"), (2, "approve"), (3, "promote")]
    assert entries[-1] == move
    assert entries[1].at < move.at
    assert ledger.verify().ok


def test_a_lost_race_writes_neither_approval_nor_move(url: str) -> None:
    ledger = Ledger(url)
    stale = ledger.holder(PROJECT, ENV)
    promote(ledger, "1")
    head = ledger.head()
    with pytest.raises(HolderChangedError):
        ledger.transition(
            LedgerEntry("promote", PROJECT, ENV, actor="bob", to_version="2"),
            expected=stale,
            preceding=[LedgerEntry("approve", PROJECT, ENV, actor="boss", to_version="2")],
        )
    assert ledger.head() == head
    assert [e.action for e in ledger.entries()] == ["promote"]


def test_a_failure_after_the_approval_rolls_everything_back(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(url)
    fill(ledger, 1)
    head = ledger.head()

    def broken(conn: Any, tip: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(ledger, "_save_head", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        ledger.transition(
            LedgerEntry("promote", PROJECT, ENV, actor="alice", to_version="1"),
            expected=Holder(None, 0),
            preceding=[LedgerEntry("approve", PROJECT, ENV, actor="boss", to_version="1")],
        )
    monkeypatch.undo()
    assert ledger.head() == head
    assert [e.action for e in ledger.entries()] == ["validate"]
    assert ledger.holder(PROJECT, ENV) == Holder(None, 0)
    assert ledger.verify().ok


def test_the_loser_can_be_recorded_as_a_refusal(url: str) -> None:
    ledger = Ledger(url)
    stale = ledger.holder(PROJECT, ENV)
    promote(ledger, "1")
    with pytest.raises(HolderChangedError) as lost:
        ledger.transition(
            LedgerEntry("promote", PROJECT, ENV, actor="bob", to_version="2", verdict_id="v-2"),
            expected=stale,
            preceding=[LedgerEntry("approve", PROJECT, ENV, actor="boss", reason="go")],
            refuse_on_conflict=True,
        )
    refusal = lost.value.refusal
    assert refusal is not None
    assert ledger.entries()[-1] == refusal
    assert (refusal.action, refusal.actor, refusal.from_version, refusal.to_version) == (
        "refuse",
        "bob",
        "1",
        "2",
    )
    assert refusal.verdict_id == "v-2"
    assert "now held by v1 (revision 1)" in refusal.reason
    assert refusal.details["withdrawn"] == [{"action": "approve", "actor": "boss", "reason": "go"}]
    # and the service's own append after a failed transition works as well
    ledger.append(LedgerEntry("refuse", PROJECT, ENV, actor="svc", reason="lost"))
    assert [e.action for e in ledger.entries()] == ["promote", "refuse", "refuse"]
    assert ledger.verify().ok


def test_preceding_entries_cannot_move_holders(url: str) -> None:
    ledger = Ledger(url)
    with pytest.raises(ValueError, match="preceding rollback"):
        ledger.transition(
            LedgerEntry("promote", PROJECT, ENV, actor="a", to_version="1"),
            expected=Holder(None, 0),
            preceding=[LedgerEntry("rollback", PROJECT, ENV, actor="a", to_version="0")],
        )
    assert ledger.entries() == []


# ------------------------------------------------------------------ tampering, detected


def test_editing_a_row_is_detected_naming_the_seq(url: str) -> None:
    ledger = Ledger(url)
    fill(ledger, 4)
    tamper(url, "UPDATE modelops_ledger SET reason = 'nothing to see' WHERE seq = 3")
    verification = ledger.verify()
    assert not verification.ok
    assert verification.checked == 4
    assert verification.problems == ["entry 3: content does not match its hash (edited?)"]


def test_verification_reads_page_by_page_and_misses_no_row(
    url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Pages of 4 entries over 11: a full verification and one from a checkpoint see every row,
    an edit on the last page, and a stray row below the first seq."""
    monkeypatch.setattr(database.ledger_store, "_STREAM_BATCH", 4)
    ledger = Ledger(url)
    fill(ledger, 3)
    kept = tmp_path / "ledger.checkpoint"
    assert ledger.verified(kept).checked == 3
    fill(ledger, 8)  # pages [1-4] [5-8] [9-11] in full; [3-6] [7-10] [11] from the checkpoint
    assert (ledger.verify().ok, ledger.verify().checked) == (True, 11)
    incremental = ledger.verified(kept)
    assert (incremental.ok, incremental.checked) == (True, 9)
    tamper(url, "UPDATE modelops_ledger SET reason = 'nothing to see' WHERE seq = 11")
    assert ledger.verify().problems == ["entry 11: content does not match its hash (edited?)"]
    tamper(url, "UPDATE modelops_ledger SET seq = -1 WHERE seq = 11")
    assert ledger.verify().problems[0].startswith("entry -1")


def test_verify_before_act_costs_a_few_plain_statements(url: str, tmp_path: Path) -> None:
    """After a checkpoint, what a command pays to verify: the fingerprint, head, holders and the
    new entries in one plain query (no server-side cursor: its declare, fetch and close are round
    trips of their own), however long the ledger."""
    from sqlalchemy import event

    ledger = Ledger(url)
    fill(ledger, 40)
    kept = tmp_path / "ledger.checkpoint"
    ledger.verified(kept)
    fill(ledger, 2)
    fresh = Ledger(url)
    fresh.head()
    seen: list[tuple[str, bool]] = []

    def record(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        options = context.execution_options if context is not None else {}
        streamed = bool(options.get("yield_per") or options.get("stream_results"))
        seen.append((" ".join(sql.split()), streamed))

    event.listen(fresh._db.engine(), "before_cursor_execute", record)
    result = fresh.verified(kept)
    assert (result.ok, result.checked) == (True, 3)
    reads = [sql for sql, _ in seen if re.search(r"FROM modelops_ledger\b(?!_head)", sql)]
    assert len(reads) == 1, reads
    assert not [sql for sql, streamed in seen if streamed]
    # SQLite: BEGIN, schema cookie, head, holders, tail; PostgreSQL: session settings,
    # fingerprint (guards and update/delete counts in one statement), head, holders, tail.
    assert len(seen) <= 5, [sql[:80] for sql, _ in seen]


def test_rewriting_a_row_with_a_matching_hash_still_breaks_the_chain(url: str) -> None:
    ledger = Ledger(url)
    fill(ledger, 4)
    forged = dataclasses.replace(ledger.entries()[1], reason="forged")
    with tampering(url) as conn:
        conn.execute(
            _text("UPDATE modelops_ledger SET reason = :reason, hash = :hash WHERE seq = 2"),
            {"reason": forged.reason, "hash": chain.entry_hash(forged)},
        )
    problems = ledger.verify().problems
    assert len(problems) == 1
    assert problems[0].startswith("entry 3: prev_hash does not match the hash of entry 2")


def test_deleting_rows_is_detected(url: str) -> None:
    ledger = Ledger(url)
    fill(ledger, 6)
    tamper(url, "DELETE FROM modelops_ledger WHERE seq = 3")
    assert ledger.verify().problems == ["entry 3 missing before entry 4 (deleted?)"]
    tamper(url, "DELETE FROM modelops_ledger WHERE seq >= 5")
    assert ledger.verify().problems == [
        "entry 3 missing before entry 4 (deleted?)",
        "entries 5-6 missing at the end: the head records entry 6 (deleted?)",
    ]


def test_a_forged_verdict_with_recomputed_sha256_is_caught_only_with_a_key(url: str) -> None:
    plain = Ledger(url)
    fill(plain, 2)
    forged = forge(url, passed_verdict())
    # the attack of the issue: without a key, nothing tells the forgery from a real entry
    assert plain.verify().ok
    assert plain.entries()[-1] == forged
    assert not plain.signed(forged)


def test_a_forged_verdict_is_detected_under_hmac(url: str) -> None:
    ledger = Ledger(url, key=KEY)
    genuine = fill(ledger, 2)
    assert ledger.verify().keyed_from == 1
    forged = forge(url, passed_verdict())  # plain SHA-256 recomputed, head moved

    verification = Ledger(url, key=KEY).verify()
    assert verification.problems == [
        "entry 3: HMAC does not match its content (edited, or forged without the key?)"
    ]
    assert all(ledger.signed(e) for e in genuine)
    assert not ledger.signed(forged)
    assert not ledger.signed(dataclasses.replace(genuine[1], reason="edited"))
    assert not Ledger(url).signed(genuine[0])  # no key, no proof


def test_a_keyed_ledger_without_its_key_fails_in_one_line(url: str) -> None:
    keyed = Ledger(url, key=KEY)
    fill(keyed, 1)
    for action in (
        Ledger(url).verify,
        lambda: Ledger(url).append(LedgerEntry("validate", PROJECT, ENV, actor="ci")),
        lambda: promote(Ledger(url), "1"),
    ):
        with pytest.raises(LedgerKeyError) as missing:
            action()
        assert str(missing.value) == "the ledger is HMAC-keyed; set MODELOPS_LEDGER_KEY"
    with pytest.raises(LedgerKeyError, match="not the key this ledger is HMAC-keyed with"):
        Ledger(url, key=b"another key").verify()
    with pytest.raises(LedgerKeyError, match="not the key this ledger is HMAC-keyed with"):
        Ledger(url, key=b"another key").append(LedgerEntry("validate", PROJECT, ENV, actor="x"))
    assert len(Ledger(url).entries()) == 1  # reading needs no key
    assert keyed.verify().ok


def test_a_plain_ledger_switches_to_hmac_only_explicitly(url: str) -> None:
    plain = Ledger(url)
    old = fill(plain, 3)
    keyed = Ledger(url, key=KEY)
    with pytest.raises(LedgerKeyError, match="switch it to HMAC explicitly"):
        keyed.append(LedgerEntry("validate", PROJECT, ENV, actor="ci"))
    unswitched = keyed.verify()
    assert not unswitched.ok
    assert unswitched.problems[0].startswith("the ledger is not HMAC-keyed: entries 1-3 are plain")

    assert keyed.enable_hmac() == 4
    assert keyed.enable_hmac() == 4  # idempotent
    new = keyed.append(LedgerEntry("validate", PROJECT, ENV, actor="ci"))
    promote(keyed, "1")
    verification = keyed.verify()
    assert verification.ok, verification.problems
    assert verification.keyed_from == 4
    assert keyed.signed(new) and not keyed.signed(old[0])
    with pytest.raises(LedgerKeyError, match="HMAC-keyed; set MODELOPS_LEDGER_KEY"):
        plain.append(LedgerEntry("validate", PROJECT, ENV, actor="ci"))

    # the plain prefix is protected by the first keyed entry: rewrite entry 2 and re-hash 2 and 3
    edited = dataclasses.replace(old[1], reason="x")
    relinked = dataclasses.replace(old[2], prev_hash=chain.entry_hash(edited))
    with tampering(url) as conn:
        for sql, values in (
            ("UPDATE modelops_ledger SET reason = 'x', hash = :h WHERE seq = 2", edited),
            ("UPDATE modelops_ledger SET prev_hash = :p, hash = :h WHERE seq = 3", relinked),
        ):
            conn.execute(_text(sql), {"h": chain.entry_hash(values), "p": values.prev_hash})
    assert keyed.verify().problems == [
        "entry 4: prev_hash does not match the hash of entry 3 (chain broken: rewritten or "
        "reordered?)"
    ]
    tamper(
        url, f"UPDATE modelops_ledger SET prev_hash = '{chain.entry_hash(relinked)}' WHERE seq = 4"
    )
    assert keyed.verify().problems == [
        "entry 4: HMAC does not match its content (edited, or forged without the key?)"
    ]


def test_a_downgrade_to_plain_sha256_is_detected_with_the_key(url: str) -> None:
    keyed = Ledger(url, key=KEY)
    fill(keyed, 3)
    rechain(url)  # every entry re-hashed as plain SHA-256, hmac_from cleared
    assert Ledger(url).verify().ok  # consistent as a plain chain...
    problems = keyed.verify().problems  # ...but the key holder expects a keyed one
    assert problems == [
        "the ledger is not HMAC-keyed: entries 1-3 are plain SHA-256, which anyone able to write "
        "the database can recompute (switch explicitly: modelops ledger enable-hmac)"
    ]


def test_truncation_and_wiping_are_detected_against_an_anchor(url: str) -> None:
    ledger = Ledger(url, key=KEY)
    entries = fill(ledger, 5)
    anchor = ledger.anchor()
    assert anchor == f"5:{entries[-1].hash}"
    assert ledger.verify(anchor).ok

    # cut the newest rows and move the head back: consistent on its own
    tamper(
        url,
        "DELETE FROM modelops_ledger WHERE seq > 3",
        f"UPDATE modelops_ledger_head SET last_seq = 3, last_hash = '{entries[2].hash}'",
    )
    assert ledger.verify().ok
    assert ledger.verify(anchor).problems == [
        "ledger truncated or rewritten before anchor 5: entry 5 is missing (the ledger ends at "
        "entry 3)"
    ]

    # wipe everything
    tamper(
        url,
        "DELETE FROM modelops_ledger",
        f"UPDATE modelops_ledger_head SET last_seq = 0, last_hash = '{chain.GENESIS_HASH}'",
    )
    assert ledger.verify().ok  # "0 entries, hash chain intact": the issue
    problems = ledger.verify(anchor).problems
    assert len(problems) == 1
    assert problems[0].startswith("ledger truncated or rewritten before anchor 5")


def test_a_consistent_rewrite_is_detected_against_an_anchor(url: str) -> None:
    ledger = Ledger(url)
    fill(ledger, 4)
    anchor = ledger.anchor()
    rechain(url, keep=4)  # same content, new timestamps: every hash differs
    assert ledger.verify().ok
    assert ledger.verify(anchor).problems == [
        "ledger truncated or rewritten before anchor 4: entry 4 no longer has the anchored hash"
    ]


def test_a_malformed_anchor_is_one_clear_line(url: str) -> None:
    with pytest.raises(ConfigError, match="is not '<seq>:<64 hex digits>'"):
        Ledger(url).verify(anchor="12")


def test_an_edited_holder_table_is_detected(url: str) -> None:
    ledger = Ledger(url)
    promote(ledger, "1")
    promote(ledger, "2")
    promote(ledger, "1", action="rollback")
    tamper(
        url,
        "UPDATE modelops_environment SET version = '2' WHERE environment = 'production'",
        "INSERT INTO modelops_environment VALUES ('churn', 'dev', '7', 1, '2030-01-01')",
    )
    assert ledger.holder(PROJECT, ENV) == Holder("2", 3)  # what the edit did to holder()
    assert ledger.verify().problems == [
        "holder of churn/dev: modelops_environment says v7 (revision 1), the ledger says "
        "(nobody) (revision 0) (edited?)",
        "holder of churn/production: modelops_environment says v2 (revision 3), the ledger says "
        "v1 (revision 3) (edited?)",
    ]


def test_casual_edits_are_rejected_by_the_database(url: str) -> None:
    from sqlalchemy.exc import DBAPIError

    ledger = Ledger(url)
    fill(ledger, 2)
    promote(ledger, "1")
    before = (ledger.entries(), ledger.head(), ledger.holder(PROJECT, ENV))
    postgres = url.startswith("postgresql")
    statements = [
        "UPDATE modelops_ledger SET reason = 'rewritten'",
        "DELETE FROM modelops_ledger WHERE seq = 3",
        "UPDATE modelops_ledger_head SET last_seq = 1",
        "DELETE FROM modelops_ledger_head",
        "UPDATE modelops_environment SET version = '2'",
        "DELETE FROM modelops_environment",
        "INSERT INTO modelops_environment VALUES ('churn', 'dev', '7', 1, '2030-01-01')",
        "INSERT INTO modelops_ledger_head (id, last_seq, last_hash) VALUES (2, 0, 'x')",
    ]
    if postgres:
        statements += [
            f"TRUNCATE {table}"
            for table in ("modelops_ledger", "modelops_ledger_head", "modelops_environment")
        ]
    for sql in statements:
        with pytest.raises(DBAPIError, match=r"rejected|no such function"):
            casual(url, sql)
    assert (ledger.entries(), ledger.head(), ledger.holder(PROJECT, ENV)) == before
    assert ledger.verify().ok
    ledger.append(LedgerEntry("validate", PROJECT, ENV, actor="ci"))  # appends still work


def test_a_deleted_head_row_is_one_clear_line_and_reported(url: str) -> None:
    ledger = Ledger(url)
    fill(ledger, 3)
    tamper(url, "DELETE FROM modelops_ledger_head")
    fresh = Ledger(url)  # a new process does not quietly recreate it
    for action in (
        lambda: fresh.append(LedgerEntry("validate", PROJECT, ENV, actor="ci")),
        lambda: promote(fresh, "1"),
        fresh.head,
    ):
        with pytest.raises(LedgerIntegrityError) as caught:
            action()
        assert isinstance(caught.value, ModelopsError)
        assert "\n" not in str(caught.value)
        assert str(caught.value).startswith("the ledger head row is missing")
    assert fresh.verify().problems == ["entry 3: the ledger head row is missing (deleted?)"]
    assert len(fresh.entries()) == 3


def test_a_deleted_head_row_of_a_keyed_ledger_is_reported_alone(url: str) -> None:
    ledger = Ledger(url)
    fill(ledger, 2)
    keyed = Ledger(url, key=KEY)
    keyed.enable_hmac()
    fill(keyed, 2)
    tamper(url, "DELETE FROM modelops_ledger_head")
    verification = keyed.verify()
    assert verification.problems == ["entry 4: the ledger head row is missing (deleted?)"]
    assert verification.keyed_from == 3


def test_an_entry_that_is_not_an_entry_is_one_clear_line(url: str) -> None:
    ledger = Ledger(url)
    fill(ledger, 2)
    tamper(url, "UPDATE modelops_ledger SET details = 'not json' WHERE seq = 2")
    with pytest.raises(LedgerIntegrityError, match="ledger entry 2 is not a valid entry"):
        ledger.entries()
    assert ledger.verify().problems == ["entry 2: content is not a valid entry (edited?)"]


# ------------------------------------------------------------------ locks


@contextmanager
def head_locked_elsewhere(url: str) -> Iterator[None]:
    """Another connection holds the ledger's write lock (the head row) until the block ends."""
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                raw = conn.connection.dbapi_connection
                raw.isolation_level = None
                raw.execute("BEGIN IMMEDIATE")
                try:
                    yield
                finally:
                    raw.execute("ROLLBACK")
            else:
                with conn.begin():
                    conn.exec_driver_sql("SELECT * FROM modelops_ledger_head FOR UPDATE")
                    yield
    finally:
        engine.dispose()


def test_a_lock_wait_ends_after_the_timeout_in_one_line(url: str) -> None:
    ledger = Ledger(url, lock_timeout_s=1)
    fill(ledger, 1)
    with head_locked_elsewhere(url):
        for action in (
            lambda: ledger.append(LedgerEntry("validate", PROJECT, ENV, actor="ci")),
            lambda: promote(ledger, "1"),
        ):
            started = time.monotonic()
            with pytest.raises(LedgerLockedError) as caught:
                action()
            waited = time.monotonic() - started
            assert str(caught.value) == (
                "the ledger is locked by another writer (waited 1 s); try again"
            )
            assert 0.8 < waited < 10, waited
        assert ledger.holder(PROJECT, ENV) == Holder(None, 0)  # reads go on
    promote(ledger, "1")  # and once the lock is gone, writes too
    assert ledger.verify().ok


# ------------------------------------------------------------------ schema


LEGACY_TRIGGER = (
    """
CREATE OR REPLACE FUNCTION modelops_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'modelops_ledger is append-only: % rejected', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
""",
    """
CREATE TRIGGER modelops_ledger_append_only
BEFORE UPDATE OR DELETE OR TRUNCATE ON modelops_ledger
FOR EACH STATEMENT EXECUTE FUNCTION modelops_ledger_append_only()
""",
)


def legacy_hash(row: dict[str, Any]) -> str:
    """The hash exactly as the code before core/ledger.py computed it."""
    import hashlib

    content = {k: v for k, v in row.items() if k != "hash"}
    content["at"] = row["at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    text = json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def create_legacy_database(url: str) -> list[dict[str, Any]]:
    """A database as the code before the migrations left it: tables, head row, trigger, rows."""
    from sqlalchemy import (
        BigInteger,
        Column,
        DateTime,
        Index,
        Integer,
        MetaData,
        String,
        Table,
        Text,
        insert,
    )

    metadata = MetaData()
    ledger_table = Table(
        "modelops_ledger",
        metadata,
        Column("seq", BigInteger, primary_key=True, autoincrement=False),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("action", String(32), nullable=False),
        Column("project", String(200), nullable=False),
        Column("environment", String(200), nullable=False),
        Column("actor", String(500), nullable=False),
        Column("reason", Text, nullable=False),
        Column("from_version", String(200)),
        Column("to_version", String(200)),
        Column("verdict_id", String(200)),
        Column("details", Text, nullable=False),
        Column("prev_hash", String(64), nullable=False),
        Column("hash", String(64), nullable=False),
        Index("ix_modelops_ledger_project_environment", "project", "environment", "seq"),
    )
    environment = Table(
        "modelops_environment",
        metadata,
        Column("project", String(200), primary_key=True),
        Column("environment", String(200), primary_key=True),
        Column("version", String(200)),
        Column("revision", Integer, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )
    head = Table(
        "modelops_ledger_head",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("last_seq", BigInteger, nullable=False),
        Column("last_hash", String(64), nullable=False),
    )
    rows: list[dict[str, Any]] = []
    prev = chain.GENESIS_HASH
    start = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    for seq, (action, from_version, to_version, details) in enumerate(
        [
            ("validate", None, "1", {"passed": True, "metrics": {"auc": 0.9}}),
            ("promote", None, "1", {}),
            ("validate", "1", "2", {"passed": True, "note": 'é ü "q"'}),
            ("approve", "1", "2", {}),
            ("promote", "1", "2", {}),
        ],
        start=1,
    ):
        row: dict[str, Any] = {
            "seq": seq,
            "at": start + timedelta(minutes=seq, microseconds=seq),
            "action": action,
            "project": PROJECT,
            "environment": ENV,
            "actor": "legacy",
            "reason": f"legacy {action}",
            "from_version": from_version,
            "to_version": to_version,
            "verdict_id": None,
            "details": details,
            "prev_hash": prev,
        }
        row["hash"] = prev = legacy_hash(row)
        rows.append(row)
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            metadata.create_all(conn)
            conn.execute(
                insert(ledger_table),
                [{**row, "details": chain.canonical(row["details"])} for row in rows],
            )
            conn.execute(
                insert(environment).values(
                    project=PROJECT,
                    environment=ENV,
                    version="2",
                    revision=2,
                    updated_at=rows[-1]["at"],
                )
            )
            conn.execute(insert(head).values(id=1, last_seq=len(rows), last_hash=prev))
            if conn.dialect.name == "postgresql":
                for statement in LEGACY_TRIGGER:
                    conn.execute(_text(statement))
    finally:
        engine.dispose()
    return rows


def test_a_database_from_before_the_migrations_is_adopted(url: str) -> None:
    from sqlalchemy.exc import DBAPIError

    rows = create_legacy_database(url)
    ledger = Ledger(url)
    entries = ledger.entries()
    assert [(e.seq, e.hash, e.details) for e in entries] == [
        (r["seq"], r["hash"], r["details"]) for r in rows
    ]
    verification = ledger.verify()
    assert verification.ok, verification.problems
    assert verification.checked == 5
    assert ledger.holder(PROJECT, ENV) == Holder("2", 2)
    casual_update = "UPDATE modelops_environment SET version = '1'"
    with pytest.raises(DBAPIError, match=r"rejected|no such function"):
        casual(url, casual_update)  # the new guards are in place
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            version = conn.exec_driver_sql(
                f"SELECT version_num FROM {database.VERSION_TABLE}"
            ).scalar()
    finally:
        engine.dispose()
    assert version == database.HEAD_REVISION
    promote(ledger, "3")  # the chain goes on from the legacy head
    assert [e.seq for e in ledger.entries()] == [1, 2, 3, 4, 5, 6]
    assert Ledger(url).verify().ok


def test_the_schema_is_migrated_once(url: str) -> None:
    Ledger(url).head()
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            versions = conn.exec_driver_sql(
                f"SELECT version_num FROM {database.VERSION_TABLE}"
            ).all()
    finally:
        engine.dispose()
    assert versions == [(database.HEAD_REVISION,)]
    second = Ledger(url)
    second.head()
    assert second.verify().ok


__all__ = [name for name in dir() if name.startswith("test_")]
