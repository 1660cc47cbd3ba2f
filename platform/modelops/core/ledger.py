"""The ledger's hash chain, its verification and holder replay: pure logic, no I/O.

An entry's hash covers a canonical JSON of every field (its ``seq``, ``at``, content and the
``prev_hash`` of the entry before; 64 zeros for the first):

- unkeyed: ``SHA-256(canonical)``; anyone able to write the database can recompute it, so this
  only catches accidents and edits by someone who does not bother to recompute;
- keyed: ``HMAC-SHA256(key, prev_hash + canonical)``; without the key a forged or edited entry
  cannot get a valid hash.

A chain records from which ``seq`` on it is keyed (``hmac_from``) together with a *marker*,
``HMAC-SHA256(key, "modelops-ledger/hmac-from/<seq>")``, so that a reader holding the key can
tell a wrong key from an edit, and a downgrade (someone clearing ``hmac_from`` and rewriting the
keyed entries as plain SHA-256) is reported. Entries before ``hmac_from`` stay plain; the first
keyed entry's hash covers the hash of the last plain one, so the plain prefix is protected too
once one keyed entry exists.

:func:`verify_chain` consumes the stored rows as an iterator (constant memory, however long the
ledger) and also replays who holds each environment from the promote and rollback entries, to
compare with the holder table.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any, NamedTuple, Protocol

from modelops.core.errors import (
    ConcurrentChangeError,
    ConfigError,
    ModelopsError,
    ServiceUnavailableError,
)

ACTIONS = ("validate", "promote", "approve", "refuse", "rollback", "retrain", "propose", "alert")
"""Every kind of entry: the gate, moves and approvals, and what the monitor decided."""
TRANSITIONS = ("promote", "rollback")
GENESIS_HASH = "0" * 64
MAX_PROBLEMS = 1000
"""Problems listed by :func:`verify_chain`; the rest are counted in one last line."""

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_MARKER_PREFIX = b"modelops-ledger/hmac-from/"

KEY_MISSING = "the ledger is HMAC-keyed; set MODELOPS_LEDGER_KEY"
KEY_WRONG = (
    "MODELOPS_LEDGER_KEY is not the key this ledger is HMAC-keyed with (or its head row was edited)"
)


# ----------------------------------------------------------------------------- errors


class LedgerKeyError(ConfigError):
    """The configured ledger key does not fit the chain: missing, wrong, or not switched to."""


class LedgerIntegrityError(ModelopsError):
    """The stored ledger is damaged in a way that blocks the operation (e.g. no head row)."""

    exit_code = 1


class LedgerLockedError(ServiceUnavailableError):
    """Another writer held the ledger's lock longer than the configured lock timeout."""


class HolderChangedError(ConcurrentChangeError):
    """A transition lost its compare-and-swap: ``current`` holds the environment now.

    ``refusal`` is the refuse entry recorded for the loser, when the caller asked for one.
    """

    def __init__(
        self,
        message: str,
        *,
        expected: Holder,
        current: Holder,
        refusal: RecordedEntry | None = None,
    ) -> None:
        super().__init__(message)
        self.expected = expected
        self.current = current
        self.refusal = refusal

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across processes despite keywords
        return (_holder_changed, (str(self), self.expected, self.current, self.refusal))


def _holder_changed(
    message: str, expected: Holder, current: Holder, refusal: RecordedEntry | None
) -> HolderChangedError:
    return HolderChangedError(message, expected=expected, current=current, refusal=refusal)


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True)
class LedgerEntry:
    """What a caller wants recorded.

    Raises:
        ValueError: ``action`` is not one of :data:`ACTIONS`, or ``details`` is not a JSON object.
    """

    action: str
    project: str
    environment: str
    actor: str
    reason: str = ""
    from_version: str | None = None
    to_version: str | None = None
    verdict_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown ledger action {self.action!r}; expected one of {ACTIONS}")
        if not isinstance(self.details, dict):
            raise ValueError(f"ledger details must be a dict, got {type(self.details).__name__}")
        try:
            canonical(self.details)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"ledger details are not JSON-serialisable: {exc}") from exc


@dataclass(frozen=True, kw_only=True)
class RecordedEntry(LedgerEntry):
    """An entry as the ledger stored it."""

    seq: int
    at: datetime
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Holder:
    """Which version serves an environment; ``version`` None and ``revision`` 0 when never set."""

    version: str | None
    revision: int


@dataclass(frozen=True)
class Verification:
    """The result of a verification: one readable line per problem, naming the seq.

    ``anchor`` is ``"<seq>:<hash>"`` of the last entry checked: keep it somewhere the database's
    writers cannot reach and pass it to the next verify to detect truncation or a rewrite.
    ``keyed_from`` is the first HMAC-keyed seq (None: the chain is plain SHA-256).
    """

    ok: bool
    checked: int
    problems: list[str]
    anchor: str = ""
    keyed_from: int | None = None


class ChainRow(NamedTuple):
    """One stored row as the verifier reads it: ``at`` as canonical text, ``details`` as stored."""

    seq: int
    at: str
    action: str
    project: str
    environment: str
    actor: str
    reason: str
    from_version: str | None
    to_version: str | None
    verdict_id: str | None
    details: str
    prev_hash: str
    hash: str


# ----------------------------------------------------------------------------- hashing


def canonical(value: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, UTF-8 as is, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def format_time(at: datetime) -> str:
    """``at`` as the hashed text: UTC, microseconds, ``Z``."""
    return at.astimezone(UTC).strftime(_TIME_FORMAT)


def _text(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def content_json(
    *,
    seq: int,
    at: str,
    action: str,
    project: str,
    environment: str,
    actor: str,
    reason: str,
    from_version: str | None,
    to_version: str | None,
    verdict_id: str | None,
    details: str,
    prev_hash: str,
) -> str:
    """The canonical JSON of an entry's hashed content, ``details`` given as its canonical JSON.

    Equal to ``canonical({...all fields..., "details": <dict>})``, written out by hand (keys in
    sorted order) so that verification need not parse and re-serialise every entry's details.
    """
    return (
        f'{{"action":{_text(action)},"actor":{_text(actor)},"at":{_text(at)},'
        f'"details":{details},"environment":{_text(environment)},'
        f'"from_version":{_text(from_version)},"prev_hash":{_text(prev_hash)},'
        f'"project":{_text(project)},"reason":{_text(reason)},"seq":{int(seq)},'
        f'"to_version":{_text(to_version)},"verdict_id":{_text(verdict_id)}}}'
    )


def chain_hash(content: str, prev_hash: str, key: bytes | None) -> str:
    """SHA-256 of ``content`` (no key), else HMAC-SHA256(key, prev_hash + content)."""
    if key is None:
        return hashlib.sha256(content.encode("utf-8")).hexdigest()
    return hmac.new(key, (prev_hash + content).encode("utf-8"), hashlib.sha256).hexdigest()


def entry_content(entry: RecordedEntry) -> str:
    return content_json(
        seq=entry.seq,
        at=format_time(entry.at),
        action=entry.action,
        project=entry.project,
        environment=entry.environment,
        actor=entry.actor,
        reason=entry.reason,
        from_version=entry.from_version,
        to_version=entry.to_version,
        verdict_id=entry.verdict_id,
        details=canonical(entry.details),
        prev_hash=entry.prev_hash,
    )


def entry_hash(entry: RecordedEntry, key: bytes | None = None) -> str:
    """The hash ``entry`` must carry: plain SHA-256 without ``key``, HMAC-SHA256 with it."""
    return chain_hash(entry_content(entry), entry.prev_hash, key)


def is_signed(entry: RecordedEntry, key: bytes | None) -> bool:
    """Whether ``entry``'s hash is a valid HMAC of its content under ``key`` (False: no key)."""
    if not key:
        return False
    return hmac.compare_digest(entry_hash(entry, key), entry.hash)


def hmac_marker(key: bytes, hmac_from: int) -> str:
    """The marker that binds ``hmac_from`` to ``key`` (stored next to it in the head)."""
    return hmac.new(key, _MARKER_PREFIX + str(hmac_from).encode(), hashlib.sha256).hexdigest()


def writing_key(
    key: bytes | None, hmac_from: int | None, marker: str | None, last_seq: int
) -> tuple[bytes | None, int | None]:
    """The key the next entry is hashed with, and the chain's ``hmac_from`` after it.

    An empty chain written with a key is keyed from entry 1. A plain chain with entries is never
    switched implicitly: that takes :func:`start_hmac`.

    Raises:
        LedgerKeyError: the chain is keyed and ``key`` is missing or wrong, or the chain is plain
            with entries and a key is given.
    """
    if hmac_from is None:
        if key is None:
            return None, None
        if last_seq == 0:
            return key, 1
        raise LedgerKeyError(
            f"the ledger's {last_seq} entries are plain SHA-256 but MODELOPS_LEDGER_KEY is set; "
            "switch it to HMAC explicitly (modelops ledger enable-hmac) or unset the key"
        )
    check_key(key, hmac_from, marker)
    return key, hmac_from


def check_key(key: bytes | None, hmac_from: int | None, marker: str | None) -> None:
    """Raise unless ``key`` can verify a chain keyed from ``hmac_from`` (no-op for plain chains).

    Raises:
        LedgerKeyError: keyed chain and no key, or a key whose marker does not match.
    """
    if hmac_from is None:
        return
    if key is None:
        raise LedgerKeyError(KEY_MISSING)
    if marker is None or not hmac.compare_digest(hmac_marker(key, hmac_from), marker):
        raise LedgerKeyError(KEY_WRONG)


def format_anchor(seq: int, hash_: str) -> str:
    return f"{seq}:{hash_}"


def parse_anchor(anchor: str) -> tuple[int, str]:
    """``"<seq>:<hash>"`` as (seq, hash).

    Raises:
        ConfigError: not of that form.
    """
    seq_text, _, hash_ = anchor.strip().partition(":")
    if not (
        seq_text.isdigit() and len(hash_) == 64 and all(c in "0123456789abcdef" for c in hash_)
    ):
        raise ConfigError(
            f"ledger anchor {anchor!r} is not '<seq>:<64 hex digits>' (as printed by verify)"
        )
    return int(seq_text), hash_


# ----------------------------------------------------------------------------- holder replay


class _Transition(Protocol):
    @property
    def seq(self) -> int: ...
    @property
    def action(self) -> str: ...
    @property
    def project(self) -> str: ...
    @property
    def environment(self) -> str: ...
    @property
    def from_version(self) -> str | None: ...
    @property
    def to_version(self) -> str | None: ...


def shown(version: str | None) -> str:
    if version is None:
        return "(nobody)"
    return version if version.startswith("v") else f"v{version}"


class HolderReplay:
    """Who holds each (project, environment) after the transitions fed so far, in seq order.

    A holder's revision is the number of transitions of its environment, exactly as the holder
    table counts them. A transition whose ``from_version`` is not the holder at that point is a
    problem (the ledger's compare-and-swap never writes one).
    """

    def __init__(self) -> None:
        self.holders: dict[tuple[str, str], Holder] = {}
        self.problems: list[str] = []

    def feed(self, entry: _Transition) -> None:
        if entry.action not in TRANSITIONS:
            return
        pair = (entry.project, entry.environment)
        before = self.holders.get(pair, Holder(None, 0))
        if entry.from_version != before.version:
            self.problems.append(
                f"entry {entry.seq}: {entry.action} of {pair[0]}/{pair[1]} from "
                f"{shown(entry.from_version)}, but the ledger's holder was {shown(before.version)}"
            )
        self.holders[pair] = Holder(entry.to_version, before.revision + 1)


def replay_holders(entries: Iterable[_Transition]) -> dict[tuple[str, str], Holder]:
    """The holder of every (project, environment) that ever had a transition."""
    replay = HolderReplay()
    for entry in entries:
        replay.feed(entry)
    return replay.holders


def compare_holders(
    table: Mapping[tuple[str, str], Holder], replayed: Mapping[tuple[str, str], Holder]
) -> list[str]:
    """One problem per (project, environment) where the holder table and the ledger differ."""
    problems = []
    for pair in sorted(set(table) | set(replayed)):
        stored, derived = table.get(pair, Holder(None, 0)), replayed.get(pair, Holder(None, 0))
        if stored != derived:
            problems.append(
                f"holder of {pair[0]}/{pair[1]}: modelops_environment says "
                f"{shown(stored.version)} (revision {stored.revision}), the ledger says "
                f"{shown(derived.version)} (revision {derived.revision}) (edited?)"
            )
    return problems


# ----------------------------------------------------------------------------- verification


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
