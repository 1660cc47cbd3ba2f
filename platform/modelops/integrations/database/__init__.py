"""The platform database: storage, locks and schema of the ledger and the environment holders.

* :mod:`.engine` - the connection: engine, transactions, timeouts, database errors in one line.
* :mod:`.schema` - the three tables as the queries see them, and stored rows as records.
* :mod:`.migrate` - the Alembic migrations (``migrations/``), run to head on first use.
* :mod:`.ledger_store` - :class:`Ledger`: append, compare-and-swap transitions, reads, verify.

The domain rules (hashed content, keys, transition preconditions, refusal wording, holder
history, verification) are :mod:`modelops.core.ledger`'s; this package stores and fetches.
SQLAlchemy and Alembic are imported lazily so that importing it stays cheap.
"""

from modelops.core.ledger import (
    ACTIONS,
    GENESIS_HASH,
    TRANSITIONS,
    Holder,
    HolderChangedError,
    LedgerEntry,
    LedgerIntegrityError,
    LedgerKeyError,
    LedgerLockedError,
    RecordedEntry,
    Verification,
)
from modelops.integrations.database.ledger_store import Ledger
from modelops.integrations.database.migrate import (
    HEAD_REVISION,
    MIGRATIONS,
    REVISIONS,
    VERSION_TABLE,
)

__all__ = [
    "ACTIONS",
    "GENESIS_HASH",
    "HEAD_REVISION",
    "MIGRATIONS",
    "REVISIONS",
    "TRANSITIONS",
    "VERSION_TABLE",
    "Holder",
    "HolderChangedError",
    "Ledger",
    "LedgerEntry",
    "LedgerIntegrityError",
    "LedgerKeyError",
    "LedgerLockedError",
    "RecordedEntry",
    "Verification",
]
