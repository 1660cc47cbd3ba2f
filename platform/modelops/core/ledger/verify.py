"""Verification of a stored ledger: the chain, the head, an anchor and the holder table.

:func:`verify_chain` consumes the stored rows as an iterator (constant memory, however long the
ledger) and also replays who holds each environment from the promote and rollback entries, to
compare with the holder table. Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping

from modelops.core.ledger.chain import content_json, format_anchor, parse_anchor
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

    Raises:
        ConfigError: ``anchor`` is not ``"<seq>:<hash>"``.
    """
    anchor_at = parse_anchor(anchor) if anchor is not None else None
    problems = _Problems(max_problems)
    replay = HolderReplay()
    checked = 0
    last_seq, last_hash = 0, GENESIS_HASH
    anchor_found = False
    sha256, new_hmac, digest = hashlib.sha256, hmac.new, hashlib.sha256
    keyed_from = hmac_from if hmac_from is not None else 1 << 62
    infer = infer_hmac_from and key is not None and hmac_from is None
    infer_key = key or b""
    for row in rows:
        checked += 1
        seq = row.seq
        if seq > last_seq + 1:
            problems.add(f"{_span(last_seq + 1, seq - 1)} missing before entry {seq} (deleted?)")
        elif row.prev_hash != last_hash:
            problems.add(
                f"entry {seq}: prev_hash does not match the hash of entry {last_seq} "
                "(chain broken: rewritten or reordered?)"
            )
        if row.action not in ACTIONS or not row.details.startswith("{"):
            problems.add(f"entry {seq}: content is not a valid entry (edited?)")
        else:
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
            if seq >= keyed_from:
                assert key is not None
                expected = new_hmac(
                    key, (row.prev_hash + content).encode("utf-8"), digest
                ).hexdigest()
                if not hmac.compare_digest(expected, row.hash):
                    problems.add(
                        f"entry {seq}: HMAC does not match its content (edited, or forged "
                        "without the key?)"
                    )
            elif sha256(content.encode("utf-8")).hexdigest() != row.hash:
                if infer and hmac.compare_digest(
                    new_hmac(
                        infer_key, (row.prev_hash + content).encode("utf-8"), digest
                    ).hexdigest(),
                    row.hash,
                ):
                    keyed_from = seq  # the head that said so is gone: keyed from here on
                    hmac_from = seq
                else:
                    problems.add(f"entry {seq}: content does not match its hash (edited?)")
            if row.action in TRANSITIONS:
                replay.feed(row)
        if anchor_at is not None and seq == anchor_at[0]:
            anchor_found = True
            if row.hash != anchor_at[1]:
                problems.add(
                    f"ledger truncated or rewritten before anchor {seq}: entry {seq} no longer "
                    "has the anchored hash"
                )
        last_seq, last_hash = seq, row.hash

    if head is None:
        problems.add(
            f"entry {last_seq}: the ledger head row is missing (deleted?)"
            if checked
            else "the ledger head row is missing (deleted?)"
        )
    elif head[0] > last_seq:
        problems.add(
            f"{_span(last_seq + 1, head[0])} missing at the end: the head records entry "
            f"{head[0]} (deleted?)"
        )
    elif head[0] < last_seq:
        problems.add(
            f"entry {last_seq}: not recorded in the head, which ends at entry {head[0]} "
            "(written outside the ledger?)"
        )
    elif head[1] != last_hash:
        problems.add(f"entry {last_seq}: hash does not match the head's (edited?)")
    if anchor_at is not None and anchor_at[0] > 0 and not anchor_found:
        problems.add(
            f"ledger truncated or rewritten before anchor {anchor_at[0]}: entry {anchor_at[0]} "
            f"is missing (the ledger ends at entry {last_seq})"
        )
    if anchor_at is not None and anchor_at[0] == 0 and anchor_at[1] != GENESIS_HASH:
        problems.add("ledger anchor 0 must carry the genesis hash (64 zeros)")
    if key is not None and hmac_from is None and checked and head is not None:
        problems.add(
            f"the ledger is not HMAC-keyed: {_span(1, last_seq)} are plain SHA-256, which anyone "
            "able to write the database can recompute (switch explicitly: "
            "modelops ledger enable-hmac)"
        )
    if key is not None and hmac_from is not None and hmac_from > last_seq + 1:
        problems.add(
            f"the head says the chain is keyed from entry {hmac_from}, after its last entry "
            f"{last_seq} (head edited?)"
        )
    for line in replay.problems:
        problems.add(line)
    for line in compare_holders(holders, replay.holders):
        problems.add(line)
    lines = problems.result()
    return Verification(
        ok=not lines,
        checked=checked,
        problems=lines,
        anchor=format_anchor(last_seq, last_hash),
        keyed_from=hmac_from,
    )
