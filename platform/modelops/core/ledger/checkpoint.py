"""The last verified state of a ledger, so that the next verification starts from there.

Verifying a long ledger from its first entry before every action would cost seconds; instead
each successful verification leaves a :class:`Checkpoint` (the last verified entry's seq and
hash, the chain's keying, the holders the transitions added up to, and a fingerprint of the
storage's schema) and the next one re-checks only the checkpoint's own entry and what came after
(:func:`modelops.core.ledger.verify_chain` with ``since``). Anything at or before the checkpoint
that no longer matches it fails: its entry gone or re-hashed (a tail truncation, a rewrite).
Rows before it are not re-read (that is the saving); editing or deleting them takes getting past
the guards, which moves the storage fingerprint (see the adapter), and a changed fingerprint
makes the next verification a full one, with the checkpoint as its anchor.

With a key the checkpoint carries an HMAC, so that nobody without the key can make a verifier
skip entries it never saw; a checkpoint that does not check out is ignored (a full verification
then). Pure functions, no I/O: the adapter stores the text.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from modelops.core.ledger.chain import format_anchor
from modelops.core.ledger.records import GENESIS_HASH, Holder, canonical

_FORMAT = 1
_MAC_PREFIX = b"modelops-ledger/checkpoint/"


@dataclass(frozen=True)
class Checkpoint:
    """What a successful verification established.

    ``seq``/``hash``: the last verified entry (0 and the genesis hash for an empty ledger);
    ``hmac_from``: the chain's first keyed seq then; ``holders``: the holder of every
    (project, environment) replayed up to ``seq``; ``fingerprint``: the storage's schema
    fingerprint then; ``database``: which database it is of (a digest of its URL).
    """

    seq: int = 0
    hash: str = GENESIS_HASH
    hmac_from: int | None = None
    holders: Mapping[tuple[str, str], Holder] = field(default_factory=dict)
    fingerprint: str = ""
    database: str = ""

    @property
    def anchor(self) -> str:
        return format_anchor(self.seq, self.hash)


def database_id(url: str) -> str:
    """A digest naming the database at ``url`` without keeping its URL (or password)."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def _payload(checkpoint: Checkpoint) -> dict[str, object]:
    return {
        "format": _FORMAT,
        "database": checkpoint.database,
        "seq": checkpoint.seq,
        "hash": checkpoint.hash,
        "hmac_from": checkpoint.hmac_from,
        "fingerprint": checkpoint.fingerprint,
        "holders": [
            [project, environment, holder.version, holder.revision]
            for (project, environment), holder in sorted(checkpoint.holders.items())
        ],
    }


def _mac(key: bytes, body: str) -> str:
    return hmac.new(key, _MAC_PREFIX + body.encode("utf-8"), hashlib.sha256).hexdigest()


def checkpoint_text(checkpoint: Checkpoint, key: bytes | None) -> str:
    """``checkpoint`` as stored: canonical JSON, with an HMAC under ``key`` when there is one."""
    payload = _payload(checkpoint)
    if key is not None:
        payload["mac"] = _mac(key, canonical(payload))
    return canonical(payload) + "\n"


def read_checkpoint(text: str, key: bytes | None, database: str) -> Checkpoint | None:
    """The checkpoint stored as ``text`` for ``database``, None when it cannot be trusted.

    Untrusted: not a checkpoint of this format, of another database, or (with ``key``) without
    a valid HMAC under it. Without a key nothing proves who wrote it; its worth is then what the
    plain chain's is (the verifier re-checks its entry's hash either way).
    """
    try:
        payload = json.loads(text)
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            return None
        mac = payload.pop("mac", None)
        if key is not None and not (
            isinstance(mac, str) and hmac.compare_digest(_mac(key, canonical(payload)), mac)
        ):
            return None
        holders = {
            (str(project), str(environment)): Holder(
                None if version is None else str(version), int(revision)
            )
            for project, environment, version, revision in payload["holders"]
        }
        checkpoint = Checkpoint(
            seq=int(payload["seq"]),
            hash=str(payload["hash"]),
            hmac_from=None if payload["hmac_from"] is None else int(payload["hmac_from"]),
            holders=holders,
            fingerprint=str(payload["fingerprint"]),
            database=str(payload["database"]),
        )
    except (ValueError, TypeError, KeyError):
        return None
    if checkpoint.database != database or checkpoint.seq < 0:
        return None
    return checkpoint


def keying_problems(since: Checkpoint, hmac_from: int | None) -> list[str]:
    """The chain's keying now against the checkpoint's: only a switch after it is legitimate."""
    if since.hmac_from == hmac_from:
        return []
    if since.hmac_from is None and hmac_from is not None and hmac_from > since.seq:
        return []  # keyed (enable-hmac) after the checkpoint
    before = "plain SHA-256" if since.hmac_from is None else f"keyed from entry {since.hmac_from}"
    now = "plain SHA-256" if hmac_from is None else f"keyed from entry {hmac_from}"
    return [
        f"the ledger head says the chain is {now}, but it was {before} when last verified at "
        f"entry {since.seq} (head edited or downgraded?)"
    ]
