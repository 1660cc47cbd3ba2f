"""The ledger's hash chain, its rules, verification and holder replay: pure logic, no I/O.

* :mod:`.records` - entries, holders, verification results and the ledger's errors.
* :mod:`.chain` - the hashed content of an entry (one definition), its hash, keys, anchors.
* :mod:`.rules` - what a transition must satisfy, and the wording of its refusals.
* :mod:`.holders` - who holds each environment, replayed from promote and rollback entries.
* :mod:`.verify` - :func:`verify_chain`: the chain against itself, the head, an anchor and the
  holder table, in full or from a :class:`Checkpoint`.
* :mod:`.checkpoint` - the last verified state, stored (HMAC-keyed) for the next verification.

The database adapter (:mod:`modelops.integrations.database`) stores and fetches; this package
decides.
"""

from modelops.core.ledger.chain import (
    KEY_MISSING,
    KEY_WRONG,
    chain_hash,
    check_key,
    content_json,
    entry_content,
    entry_hash,
    format_anchor,
    format_time,
    hmac_marker,
    is_signed,
    next_time,
    parse_anchor,
    sealed,
    writing_key,
)
from modelops.core.ledger.checkpoint import (
    Checkpoint,
    checkpoint_text,
    database_id,
    read_checkpoint,
)
from modelops.core.ledger.holders import (
    HolderReplay,
    compare_holders,
    holder_at,
    past_holders,
    replay_holders,
    shown,
)
from modelops.core.ledger.records import (
    ACTIONS,
    GENESIS_HASH,
    TRANSITIONS,
    ChainRow,
    Holder,
    HolderChangedError,
    LedgerEntry,
    LedgerIntegrityError,
    LedgerKeyError,
    LedgerLockedError,
    RecordedEntry,
    Verification,
    canonical,
)
from modelops.core.ledger.rules import (
    check_append,
    check_transition,
    holder_changed,
    lost_race_refusal,
)
from modelops.core.ledger.verify import MAX_PROBLEMS, verify_chain

__all__ = [
    "ACTIONS",
    "GENESIS_HASH",
    "KEY_MISSING",
    "KEY_WRONG",
    "MAX_PROBLEMS",
    "TRANSITIONS",
    "ChainRow",
    "Checkpoint",
    "Holder",
    "HolderChangedError",
    "HolderReplay",
    "LedgerEntry",
    "LedgerIntegrityError",
    "LedgerKeyError",
    "LedgerLockedError",
    "RecordedEntry",
    "Verification",
    "canonical",
    "chain_hash",
    "check_append",
    "check_key",
    "check_transition",
    "checkpoint_text",
    "compare_holders",
    "content_json",
    "database_id",
    "entry_content",
    "entry_hash",
    "format_anchor",
    "format_time",
    "hmac_marker",
    "holder_at",
    "holder_changed",
    "is_signed",
    "lost_race_refusal",
    "next_time",
    "parse_anchor",
    "past_holders",
    "read_checkpoint",
    "replay_holders",
    "sealed",
    "shown",
    "verify_chain",
    "writing_key",
]
