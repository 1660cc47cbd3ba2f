"""The ledger's hash chain: the hashed content of an entry, its hash, keys and anchors.

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

:func:`content_json` is the one definition of the hashed content: :func:`sealed` (what a
writer stores), :func:`entry_content` (a recorded entry) and the verifier all go through it.
Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring

from modelops.core.errors import ConfigError
from modelops.core.ledger.records import LedgerEntry, LedgerKeyError, RecordedEntry, canonical

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_MARKER_PREFIX = b"modelops-ledger/hmac-from/"

KEY_MISSING = "the ledger is HMAC-keyed; set MODELOPS_LEDGER_KEY"
KEY_WRONG = (
    "MODELOPS_LEDGER_KEY is not the key this ledger is HMAC-keyed with (or its head row was edited)"
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
    """The hashed content of a recorded entry (its details re-serialised canonically)."""
    return _content(
        entry, entry.seq, format_time(entry.at), entry.prev_hash, canonical(entry.details)
    )


def _content(entry: LedgerEntry, seq: int, at: str, prev_hash: str, details: str) -> str:
    return content_json(
        seq=seq,
        at=at,
        action=entry.action,
        project=entry.project,
        environment=entry.environment,
        actor=entry.actor,
        reason=entry.reason,
        from_version=entry.from_version,
        to_version=entry.to_version,
        verdict_id=entry.verdict_id,
        details=details,
        prev_hash=prev_hash,
    )


def next_time(now: datetime, last_at: datetime | None) -> datetime:
    """When the next entry is recorded: ``now``, or just after the last entry if that is later.

    ``at`` is strictly increasing in seq order, whatever the clocks of the writers say.
    """
    if last_at is None:
        return now
    return max(now, last_at + timedelta(microseconds=1))


def sealed(
    entry: LedgerEntry,
    *,
    seq: int,
    at: datetime,
    prev_hash: str,
    hmac_from: int | None,
    key: bytes | None,
) -> tuple[RecordedEntry, str]:
    """``entry`` as recorded at ``seq`` after ``prev_hash``, and its details as stored.

    The hash is HMAC-SHA256 under ``key`` from ``hmac_from`` on, plain SHA-256 before (or
    without ``hmac_from``). The details are stored as the canonical JSON that was hashed, so
    the verifier hashes exactly the stored text.
    """
    details = canonical(entry.details)
    content = _content(entry, seq, format_time(at), prev_hash, details)
    keyed = hmac_from is not None and seq >= hmac_from
    recorded = RecordedEntry(
        action=entry.action,
        project=entry.project,
        environment=entry.environment,
        actor=entry.actor,
        reason=entry.reason,
        from_version=entry.from_version,
        to_version=entry.to_version,
        verdict_id=entry.verdict_id,
        details=json.loads(details),
        seq=seq,
        at=at,
        prev_hash=prev_hash,
        hash=chain_hash(content, prev_hash, key if keyed else None),
    )
    return recorded, details


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
