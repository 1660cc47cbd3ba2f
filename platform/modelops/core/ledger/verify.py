"""Verification of a stored ledger: the chain, the head, an anchor and the holder table.

:func:`verify_chain` consumes the stored rows as an iterator (constant memory, however long the
ledger) and also replays who holds each environment from the promote and rollback entries, to
compare with the holder table. Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from modelops.core.ledger.chain import content_json, format_anchor, parse_anchor
from modelops.core.ledger.checkpoint import Checkpoint, keying_problems
from modelops.core.ledger.holders import HolderReplay, compare_holders
from modelops.core.ledger.records import (
    ACTIONS,
    GENESIS_HASH,
    TRANSITIONS,
    ChainRow,
    Holder,
    Verification,
)

MAX_PROBLEMS = 1000
"""Problems listed by :func:`verify_chain`; the rest are counted in one last line."""


def _span(first: int, last: int) -> str:
    return f"entry {first}" if first == last else f"entries {first}-{last}"


class _Problems:
    """At most ``limit`` lines kept; the rest counted, so a wrecked ledger stays cheap."""

    def __init__(self, limit: int) -> None:
        self.lines: list[str] = []
        self.more = 0
        self.limit = limit

    def add(self, line: str) -> None:
        if len(self.lines) < self.limit:
            self.lines.append(line)
        else:
            self.more += 1

    def result(self) -> list[str]:
        if self.more:
            return [*self.lines, f"... and {self.more} more problem(s) not listed"]
        return list(self.lines)


def verify_chain(
    rows: Iterable[ChainRow],
    *,
    head: tuple[int, str] | None,
    holders: Mapping[tuple[str, str], Holder],
    key: bytes | None = None,
    hmac_from: int | None = None,
    anchor: str | None = None,
    infer_hmac_from: bool = False,
    max_problems: int = MAX_PROBLEMS,
    since: Checkpoint | None = None,
    fingerprint: str = "",
    database: str = "",
) -> Verification:
    """Check ``rows`` (in seq order) against each other, the head, an anchor and the holders.

    Detects: edited rows (content no longer matches the hash; with a key, also rows forged with a
    recomputed SHA-256), rows deleted in the middle (a gap in seq or a broken ``prev_hash``
    link), newest rows deleted (the head records more), rows written around the ledger (the head
    records fewer), a missing head (``head`` None), a truncation or rewrite before ``anchor``, and
    a holder table that differs from the holders the transitions add up to.

    ``hmac_from`` must already be checked against ``key`` (:func:`check_key`); a key given for a
    chain that is not keyed is reported as a problem, since nothing then stops a forger. With
    ``infer_hmac_from`` (the head that records ``hmac_from`` is lost) the chain counts as keyed
    from the first entry whose hash is a valid HMAC under ``key``.

    With ``since`` (a previous successful verification's :class:`Checkpoint`) the verification
    is incremental: ``rows`` start at the checkpoint's entry, whose hash must still be the
    checkpoint's and match its content; the holders replay on from the checkpoint's; the chain's
    keying must be the checkpoint's (or switched on after it).

    ``ok`` results carry the :class:`Checkpoint` of the last entry checked (with
    ``fingerprint`` and ``database`` as given), for the next verification to start from.

    Raises:
        ConfigError: ``anchor`` is not ``"<seq>:<hash>"``.
    """
    anchor_at = parse_anchor(anchor) if anchor is not None else None
    problems = _Problems(max_problems)
    walk = _Walk(problems, _Hashes(key, hmac_from, infer_hmac_from), anchor_at)
    start = _Start(since, hmac_from, problems)
    if since is not None:
        walk.replay.holders.update(since.holders)
        walk.last_seq, walk.last_hash = since.seq, since.hash
    for row in rows:
        walk.checked += 1
        if start.pending and start.first(row, walk.hashes):
            continue
        walk.feed(row)

    start.finish()
    end = _End(walk.last_seq, walk.last_hash, walk.checked, walk.anchor_found)
    for line in _head_problems(head, end):
        problems.add(line)
    for line in _anchor_problems(anchor_at, end):
        problems.add(line)
    for line in _key_problems(key, walk.hashes.hmac_from, head is not None, end):
        problems.add(line)
    for line in walk.replay.problems:
        problems.add(line)
    for line in compare_holders(holders, walk.replay.holders):
        problems.add(line)
    lines = problems.result()
    checkpoint = Checkpoint(
        seq=walk.last_seq,
        hash=walk.last_hash,
        hmac_from=walk.hashes.hmac_from,
        holders=dict(walk.replay.holders),
        fingerprint=fingerprint,
        database=database,
    )
    return Verification(
        ok=not lines,
        checked=walk.checked,
        problems=lines,
        anchor=format_anchor(walk.last_seq, walk.last_hash),
        keyed_from=walk.hashes.hmac_from,
        checkpoint=None if lines else checkpoint,
    )


class _Walk:
    """The chain walked in seq order: links, content, keyed hashes, the anchor, holder moves."""

    def __init__(
        self, problems: _Problems, hashes: _Hashes, anchor_at: tuple[int, str] | None
    ) -> None:
        self.problems = problems
        self.hashes = hashes
        self.anchor_at = anchor_at
        self.replay = HolderReplay()
        self.checked = 0
        self.last_seq, self.last_hash = 0, GENESIS_HASH
        self.anchor_found = False

    def feed(self, row: ChainRow) -> None:
        seq, problems = row.seq, self.problems
        if seq > self.last_seq + 1:
            problems.add(
                f"{_span(self.last_seq + 1, seq - 1)} missing before entry {seq} (deleted?)"
            )
        elif row.prev_hash != self.last_hash:
            problems.add(
                f"entry {seq}: prev_hash does not match the hash of entry {self.last_seq} "
                "(chain broken: rewritten or reordered?)"
            )
        if row.action not in ACTIONS or not row.details.startswith("{"):
            problems.add(f"entry {seq}: content is not a valid entry (edited?)")
        else:
            wrong = self.hashes.problem(row)
            if wrong:
                problems.add(wrong)
            if row.action in TRANSITIONS:
                self.replay.feed(row)
        if self.anchor_at is not None and seq == self.anchor_at[0]:
            self.anchor_found = True
            if row.hash != self.anchor_at[1]:
                problems.add(
                    f"ledger truncated or rewritten before anchor {seq}: entry {seq} no longer "
                    "has the anchored hash"
                )
        self.last_seq, self.last_hash = seq, row.hash


class _Start:
    """Where an incremental verification starts: the checkpoint's own entry, re-checked.

    ``pending`` until the first row is seen; :meth:`first` checks it (returns True when it was
    the checkpoint's entry, which the caller then skips: its link and holder move were verified
    before), :meth:`finish` reports a checkpoint entry that never came.
    """

    def __init__(
        self,
        since: Checkpoint | None,
        hmac_from: int | None,
        problems: _Problems,
    ) -> None:
        self.since = since
        self.problems = problems
        self.pending = since is not None and since.seq > 0
        if since is not None:
            for line in keying_problems(since, hmac_from):
                problems.add(line)

    def first(self, row: ChainRow, hashes: _Hashes) -> bool:
        assert self.since is not None
        self.pending = False
        if row.seq != self.since.seq:
            self._missing()
            return False
        if row.hash != self.since.hash:
            self.problems.add(
                f"entry {row.seq}: hash is not the one verified before (rewritten or replaced?)"
            )
        elif row.action not in ACTIONS or not row.details.startswith("{"):
            self.problems.add(f"entry {row.seq}: content is not a valid entry (edited?)")
        else:
            wrong = hashes.problem(row)
            if wrong:
                self.problems.add(wrong)
        return True

    def finish(self) -> None:
        if self.pending:
            self.pending = False
            self._missing()

    def _missing(self) -> None:
        assert self.since is not None
        self.problems.add(
            f"entry {self.since.seq}, verified before, is missing (ledger truncated or rewritten?)"
        )


class _Hashes:
    """Each row's hash against its content: plain SHA-256 before ``hmac_from``, HMAC-SHA256
    under ``key`` from it on.

    With ``infer`` (the head that records ``hmac_from`` is lost) and a key, the first row whose
    hash is a valid HMAC under ``key`` sets ``hmac_from``: the chain is keyed from there on.
    """

    def __init__(self, key: bytes | None, hmac_from: int | None, infer: bool) -> None:
        self.key = key
        self.hmac_from = hmac_from
        self.keyed_from = hmac_from if hmac_from is not None else 1 << 62
        self.infer = infer and key is not None and hmac_from is None

    def problem(self, row: ChainRow) -> str:
        """What is wrong with ``row``'s hash, "" when nothing is."""
        seq = row.seq
        content = content_json(
            seq=seq,
            at=row.at,
            action=row.action,
            project=row.project,
            environment=row.environment,
            actor=row.actor,
            reason=row.reason,
            from_version=row.from_version,
            to_version=row.to_version,
            verdict_id=row.verdict_id,
            details=row.details,
            prev_hash=row.prev_hash,
        )
        if seq >= self.keyed_from:
            assert self.key is not None
            if hmac.compare_digest(_keyed(self.key, row.prev_hash, content), row.hash):
                return ""
            return (
                f"entry {seq}: HMAC does not match its content (edited, or forged without the key?)"
            )
        if hashlib.sha256(content.encode("utf-8")).hexdigest() == row.hash:
            return ""
        if self.infer and hmac.compare_digest(
            _keyed(self.key or b"", row.prev_hash, content), row.hash
        ):
            self.keyed_from = self.hmac_from = seq  # the head that said so is gone
            return ""
        return f"entry {seq}: content does not match its hash (edited?)"


def _keyed(key: bytes, prev_hash: str, content: str) -> str:
    return hmac.new(key, (prev_hash + content).encode("utf-8"), hashlib.sha256).hexdigest()


class _End(NamedTuple):
    """Where the stored rows ended: the last seq and hash, how many rows, whether the anchor's
    seq was among them."""

    last_seq: int
    last_hash: str
    checked: int
    anchor_found: bool


def _head_problems(head: tuple[int, str] | None, end: _End) -> list[str]:
    """The head row against the last stored entry: missing, ahead, behind or another hash."""
    last_seq = end.last_seq
    if head is None:
        if end.checked:
            return [f"entry {last_seq}: the ledger head row is missing (deleted?)"]
        return ["the ledger head row is missing (deleted?)"]
    if head[0] > last_seq:
        return [
            f"{_span(last_seq + 1, head[0])} missing at the end: the head records entry "
            f"{head[0]} (deleted?)"
        ]
    if head[0] < last_seq:
        return [
            f"entry {last_seq}: not recorded in the head, which ends at entry {head[0]} "
            "(written outside the ledger?)"
        ]
    if head[1] != end.last_hash:
        return [f"entry {last_seq}: hash does not match the head's (edited?)"]
    return []


def _anchor_problems(anchor_at: tuple[int, str] | None, end: _End) -> list[str]:
    """An anchor whose entry is gone, or a genesis anchor with another hash (an anchor whose
    entry is there but changed is reported with that entry)."""
    if anchor_at is None:
        return []
    problems = []
    if anchor_at[0] > 0 and not end.anchor_found:
        problems.append(
            f"ledger truncated or rewritten before anchor {anchor_at[0]}: entry {anchor_at[0]} "
            f"is missing (the ledger ends at entry {end.last_seq})"
        )
    if anchor_at[0] == 0 and anchor_at[1] != GENESIS_HASH:
        problems.append("ledger anchor 0 must carry the genesis hash (64 zeros)")
    return problems


def _key_problems(key: bytes | None, hmac_from: int | None, has_head: bool, end: _End) -> list[str]:
    """A key given for a plain chain, or a head keyed from after the last entry."""
    if key is None:
        return []
    if hmac_from is None and end.checked and has_head:
        return [
            f"the ledger is not HMAC-keyed: {_span(1, end.last_seq)} are plain SHA-256, which "
            "anyone able to write the database can recompute (switch explicitly: "
            "modelops ledger enable-hmac)"
        ]
    if hmac_from is not None and hmac_from > end.last_seq + 1:
        return [
            f"the head says the chain is keyed from entry {hmac_from}, after its last entry "
            f"{end.last_seq} (head edited?)"
        ]
    return []
