"""Incremental verification from a checkpoint (core/ledger, pure) and its storage (SQLite).

A checkpoint says what a successful verification established; the next one re-checks its entry
and what came after. Anything at or before it that no longer matches fails.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledger_suite import tamper
from modelops.core import ledger as chain
from modelops.core.ledger import ChainRow, Checkpoint, Holder, LedgerEntry, RecordedEntry
from modelops.integrations.database import Ledger

KEY = b"k" * 32
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _chain(entries: list[LedgerEntry], key: bytes | None = None) -> list[RecordedEntry]:
    rows, prev = [], chain.GENESIS_HASH
    for seq, entry in enumerate(entries, start=1):
        recorded, _ = chain.sealed(
            entry,
            seq=seq,
            at=T0 + timedelta(seconds=seq),
            prev_hash=prev,
            hmac_from=1 if key else None,
            key=key,
        )
        rows.append(recorded)
        prev = recorded.hash
    return rows


def _row(entry: RecordedEntry) -> ChainRow:
    return ChainRow(
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


def _moves(*versions: str) -> list[LedgerEntry]:
    held: str | None = None
    moves = []
    for version in versions:
        moves.append(LedgerEntry("promote", "p", "prod", "alice", "ok", held, version))
        held = version
    return moves


def _verify(
    entries: list[RecordedEntry],
    *,
    holders: dict[tuple[str, str], Holder],
    since: Checkpoint | None = None,
    key: bytes | None = None,
    hmac_from: int | None = None,
) -> chain.Verification:
    start = since.seq if since else 0
    last = entries[-1] if entries else None
    return chain.verify_chain(
        [_row(e) for e in entries if e.seq >= start],
        head=(last.seq, last.hash) if last else (0, chain.GENESIS_HASH),
        holders=holders,
        key=key,
        hmac_from=hmac_from,
        since=since,
    )


def _checkpoint_after(entries: list[RecordedEntry], **kwargs: object) -> Checkpoint:
    holders = chain.replay_holders(entries)
    result = _verify(entries, holders=holders, **kwargs)  # type: ignore[arg-type]
    assert result.ok and result.checkpoint is not None
    return result.checkpoint


def test_appended_entries_verify_from_the_checkpoint_reading_only_them() -> None:
    entries = _chain(_moves("1", "2", "3", "4"))
    since = _checkpoint_after(entries[:2])
    assert (since.seq, since.hash) == (2, entries[1].hash)
    assert since.holders == {("p", "prod"): Holder("2", 2)}
    result = _verify(entries, holders={("p", "prod"): Holder("4", 4)}, since=since)
    assert result.ok and result.checked == 3  # entry 2 re-checked, 3 and 4 new
    assert result.checkpoint is not None and result.checkpoint.holders == {
        ("p", "prod"): Holder("4", 4)
    }


def test_a_replaced_checkpoint_entry_and_a_truncation_fail() -> None:
    entries = _chain(_moves("1", "2", "3"))
    since = _checkpoint_after(entries)
    holders = {("p", "prod"): Holder("3", 3)}
    other = _chain(_moves("1", "2", "9"))  # a consistent rewrite of entry 3
    rewritten = _verify(other, holders={("p", "prod"): Holder("9", 3)}, since=since)
    assert not rewritten.ok and rewritten.checkpoint is None
    assert "entry 3: hash is not the one verified before" in rewritten.problems[0]

    truncated = _verify(entries[:2], holders={("p", "prod"): Holder("2", 2)}, since=since)
    assert "entry 3, verified before, is missing" in " ".join(truncated.problems)
    assert _verify(entries, holders=holders, since=since).ok


def test_an_edit_after_the_checkpoint_and_a_holder_table_edit_fail() -> None:
    entries = _chain(_moves("1", "2", "3", "4"))
    since = _checkpoint_after(entries[:2])
    edited = [*entries[:3], dataclasses.replace(entries[3], actor="mallory")]
    result = _verify(edited, holders={("p", "prod"): Holder("4", 4)}, since=since)
    assert "entry 4: content does not match its hash (edited?)" in result.problems
    table = _verify(entries, holders={("p", "prod"): Holder("1", 4)}, since=since)
    assert any("modelops_environment says v1" in line for line in table.problems)


def test_a_keyed_chain_switched_back_to_plain_after_the_checkpoint_fails() -> None:
    entries = _chain(_moves("1", "2"), key=KEY)
    since = _checkpoint_after(entries, key=KEY, hmac_from=1)
    assert since.hmac_from == 1
    downgraded = _verify(
        entries, holders={("p", "prod"): Holder("2", 2)}, since=since, key=KEY, hmac_from=None
    )
    assert any("was keyed from entry 1 when last verified" in p for p in downgraded.problems)


def test_a_checkpoint_is_trusted_only_for_its_database_and_with_its_mac() -> None:
    since = Checkpoint(seq=3, hash="a" * 64, holders={("p", "e"): Holder("2", 2)}, database="db")
    text = chain.checkpoint_text(since, KEY)
    assert chain.read_checkpoint(text, KEY, "db") == since
    assert chain.read_checkpoint(text, KEY, "another") is None
    assert chain.read_checkpoint(text, b"x" * 32, "db") is None
    forged = text.replace('"seq":3', '"seq":1')
    assert chain.read_checkpoint(forged, KEY, "db") is None
    assert chain.read_checkpoint(chain.checkpoint_text(since, None), KEY, "db") is None
    assert chain.read_checkpoint("not json", None, "db") is None


def test_the_stored_checkpoint_follows_the_ledger(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'platform.db'}"
    kept = tmp_path / "state" / "ledger.checkpoint"
    ledger = Ledger(url, key=KEY)
    for entry in _moves("1", "2"):
        ledger.transition(entry, expected=ledger.holder("p", "prod"))
    assert ledger.verified(kept).checked == 2 and kept.exists()
    assert ledger.verified(kept).checked == 1
    kept.write_text(kept.read_text().replace('"seq":2', '"seq":1'))  # no key: ignored
    assert ledger.verified(kept).checked == 2
    tamper(url, "UPDATE modelops_ledger SET reason = 'x' WHERE seq = 1")  # guards dropped
    result = ledger.verified(kept)  # the schema moved: a full replay, which sees the edit
    assert not result.ok and "entry 1: HMAC does not match its content" in result.problems[0]


@pytest.mark.parametrize("stored", ["", "{}", '{"format": 1}'])
def test_an_unreadable_checkpoint_means_a_full_replay(tmp_path: Path, stored: str) -> None:
    url = f"sqlite:///{tmp_path / 'platform.db'}"
    kept = tmp_path / "ledger.checkpoint"
    ledger = Ledger(url)
    ledger.transition(_moves("1")[0], expected=Holder(None, 0))
    kept.write_text(stored)
    assert ledger.verified(kept).checked == 1 and kept.read_text() != stored
