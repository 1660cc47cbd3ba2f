"""The ledger and the environment holders in the platform database: storage and locks.

Every validation, promotion, approval, refusal and rollback becomes one row of
``modelops_ledger``; the rows form the hash chain of :mod:`modelops.core.ledger`, which decides
everything about them (hashed content, keys, transition preconditions, refusal wording, holder
history, verification): this module stores and fetches. :meth:`Ledger.transition` moves the
holder by compare-and-swap and appends the matching entries in the same transaction, so of two
concurrent promotions exactly one wins and the ledger always agrees with the holder.

Every write transaction starts by locking the head row (``SELECT ... FOR UPDATE`` on
PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite), so writers in several processes or hosts chain one
after another and the chain never forks. ``at`` is set inside that lock and is strictly
increasing in ``seq`` order.

Keys: a ledger whose first entry is written with a key is HMAC-keyed from entry 1. A ledger that
already has plain entries is never switched implicitly: writers with a key are refused until
:meth:`Ledger.enable_hmac` records, in the head, from which seq on it is keyed (with a marker only
the key can produce). A keyed ledger refuses writers and verifiers without the key, or with
another one, in one line.

Trust: verify() proves the chain is internally consistent and that the holder table is what the
transitions add up to. With a key, nobody without the key can forge or edit an entry undetected
(without one, anyone able to write the database can append a consistent forgery). Cutting the
newest entries (or wiping everything) and moving the head back is only caught against an anchor
(:meth:`Ledger.anchor`, kept outside the database) or against the checkpoint that
:meth:`Ledger.verified` keeps in a file after each successful verification (and from which the
next one starts, so that verifying before every action stays cheap).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.core.errors import ModelopsError
from modelops.core.ledger import (
    TRANSITIONS,
    ChainRow,
    Checkpoint,
    Holder,
    HolderChangedError,
    LedgerEntry,
    LedgerIntegrityError,
    LedgerKeyError,
    RecordedEntry,
    Verification,
    check_append,
    check_key,
    check_transition,
    checkpoint_text,
    database_id,
    format_anchor,
    hmac_marker,
    holder_at,
    holder_changed,
    is_signed,
    lost_race_refusal,
    next_time,
    parse_anchor,
    past_holders,
    read_checkpoint,
    sealed,
    verify_chain,
    writing_key,
)
from modelops.integrations.database.engine import Database
from modelops.integrations.database.schema import (
    as_utc,
    chain_columns,
    chain_row,
    recorded,
    storage_fingerprint,
    tables,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)

_STREAM_BATCH = 5000
_HEAD_MISSING = (
    "the ledger head row is missing (modelops_ledger_head was emptied): writes are blocked; "
    "restore it from a backup and run 'modelops history --verify'"
)


@dataclass
class _Tip:
    """The end of the chain inside one write transaction (the head row, locked)."""

    last_seq: int
    last_hash: str
    last_at: datetime | None
    key: bytes | None
    hmac_from: int | None
    start_hmac: bool  # the head does not record hmac_from yet: write it with the next entry


class Ledger:
    """The ledger and environment holders in the platform database at ``url``.

    ``url`` is a SQLAlchemy URL: ``sqlite:///<path>`` (embedded profile) or
    ``postgresql+psycopg://...`` (production). Nothing is opened or created until first use; then
    the schema is migrated to head. ``key`` (bytes) makes new entries HMAC-SHA256-keyed (see
    :mod:`modelops.core.ledger`); ``lock_timeout_s`` bounds every lock wait.

    Raises (from every method that touches the database):
        ServiceUnavailableError: the database cannot be reached or opened.
        LedgerLockedError: another writer held the lock longer than ``lock_timeout_s``.
        ConfigError: ``url`` is not a usable database URL, or its schema is newer than this code.
        LedgerKeyError: (writes and verify) the chain is keyed and ``key`` is missing or wrong,
            or the chain is plain, has entries, and a key is given (see :meth:`enable_hmac`).
        LedgerIntegrityError: (writes and head) the head row is missing.
    """

    def __init__(self, url: str, *, key: bytes | None = None, lock_timeout_s: float = 30.0) -> None:
        if lock_timeout_s <= 0:
            raise ValueError(f"lock_timeout_s must be positive, got {lock_timeout_s}")
        self.url = url
        self._key = key or None
        self._lock_timeout_s = float(lock_timeout_s)
        self._db = Database(url, self._lock_timeout_s)
        # Test hook: called inside transition() after its arguments are checked and before the
        # write transaction starts (a race test makes every contender wait there).
        self._before_swap: Callable[[], None] | None = None

    # ----------------------------------------------------------------------------- public API

    @property
    def keyed(self) -> bool:
        """Whether a key is configured (then :meth:`signed` can prove an entry's origin)."""
        return self._key is not None

    def append(self, entry: LedgerEntry) -> RecordedEntry:
        """Record ``entry`` (any action but promote and rollback, which go through transition).

        Raises:
            ValueError: ``entry`` is a promote or rollback.
        """
        check_append(entry)
        with self._db.errors(), self._db.write() as conn:
            tip = self._lock_head(conn)
            entry_recorded = self._append(conn, entry, tip)
            self._save_head(conn, tip)
            return entry_recorded

    def transition(
        self,
        entry: LedgerEntry,
        *,
        expected: Holder,
        preceding: Sequence[LedgerEntry] = (),
        refuse_on_conflict: bool = False,
    ) -> RecordedEntry:
        """Move (project, environment) from ``expected`` to ``entry.to_version`` and record it.

        Atomic: ``preceding`` entries (e.g. the approval), the holder change and ``entry`` are
        written in one transaction, in that order, or nothing is.

        With ``refuse_on_conflict``, losing the compare-and-swap records a ``refuse`` entry for
        ``entry`` (in a transaction of its own, after the lost one was rolled back) before
        raising; the error carries it as ``refusal``.

        Raises:
            ValueError: see :func:`modelops.core.ledger.check_transition`.
            HolderChangedError: (a :class:`ConcurrentChangeError`) the holder is no longer
                ``expected``; ``current`` says who holds it now.
        """
        check_transition(entry, expected, preceding)
        if self._before_swap is not None:
            self._before_swap()
        try:
            with self._db.errors():
                return self._transition(entry, expected, preceding)
        except HolderChangedError as lost:
            if not refuse_on_conflict:
                raise
            try:
                lost.refusal = self.append(
                    lost_race_refusal(entry, expected, preceding, lost.current)
                )
            except ModelopsError:
                # the lost race is what the caller must hear about; the refusal is a courtesy
                log.warning("could not record the refusal of a lost race", exc_info=True)
            raise

    def holder(self, project: str, environment: str) -> Holder:
        """The version holding (project, environment) now, and its revision."""
        with self._db.errors(), self._db.read() as conn:
            return self._holder(conn, project, environment)

    def head(self) -> tuple[int, str]:
        """The last seq and its hash ((0, 64 zeros) when empty): the anchor to keep elsewhere.

        Raises:
            LedgerIntegrityError: the head row is missing.
        """
        from sqlalchemy import select

        _, _, _, head = tables()
        with self._db.errors(), self._db.read() as conn:
            row = conn.execute(
                select(head.c.last_seq, head.c.last_hash).where(head.c.id == 1)
            ).one_or_none()
        if row is None:
            raise LedgerIntegrityError(_HEAD_MISSING)
        return int(row[0]), str(row[1])

    def anchor(self) -> str:
        """:meth:`head` as ``"<seq>:<hash>"``, the form :meth:`verify` takes."""
        return format_anchor(*self.head())

    def entries(
        self, project: str | None = None, environment: str | None = None
    ) -> list[RecordedEntry]:
        """Recorded entries in ``seq`` order, optionally only one project and/or environment."""
        from sqlalchemy import select

        _, ledger, _, _ = tables()
        query = select(ledger).order_by(ledger.c.seq)
        if project is not None:
            query = query.where(ledger.c.project == project)
        if environment is not None:
            query = query.where(ledger.c.environment == environment)
        with self._db.errors(), self._db.read() as conn:
            return [recorded(row) for row in conn.execute(query)]

    def holder_at(self, project: str, environment: str, at: datetime) -> str | None:
        """The version that held (project, environment) at ``at`` (inclusive), None if nobody.

        See :func:`modelops.core.ledger.holder_at`.

        Raises:
            ValueError: ``at`` is naive (before anything is read).
        """
        return holder_at(self._transitions(project, environment), at)

    def past_holders(self, project: str, environment: str) -> list[str]:
        """Distinct versions that held (project, environment), most recent (the holder) first."""
        return past_holders(self._transitions(project, environment))

    def signed(self, entry: RecordedEntry) -> bool:
        """Whether ``entry`` carries a valid HMAC under this ledger's key (False without a key).

        Proves the entry was written by a holder of the key, as recorded (its content, seq and
        place in the chain); it does not prove the entry is still in the database (verify does).
        """
        return is_signed(entry, self._key)

    def verify(self, anchor: str | None = None, *, since: Checkpoint | None = None) -> Verification:
        """Re-compute the chain, compare it with the head, ``anchor`` and the holder table.

        Streams the rows (constant memory) in one consistent snapshot. See
        :func:`modelops.core.ledger.verify_chain` for what is detected; ``anchor`` is a previous
        ``Verification.anchor`` or :meth:`anchor`, ``"<seq>:<hash>"``. With ``since`` (a
        previous ``Verification.checkpoint``) only its entry and the ones after are re-hashed,
        unless the storage's schema changed since (its guards dropped and put back: then the
        whole chain is, with the checkpoint as the anchor).

        Raises:
            ConfigError: ``anchor`` is malformed.
            LedgerKeyError: the chain is HMAC-keyed and no key (or another key) is configured.
        """
        from sqlalchemy import select

        if anchor is not None:
            parse_anchor(anchor)
        _, _, environment, head = tables()
        with self._db.errors(), self._db.read(snapshot=True) as conn:
            fingerprint = storage_fingerprint(conn)
            if since is not None and since.fingerprint != fingerprint:
                anchor, since = anchor or since.anchor, None
            head_row = conn.execute(select(head).where(head.c.id == 1)).one_or_none()
            hmac_from = None if head_row is None else head_row.hmac_from
            if head_row is not None:
                check_key(self._key, hmac_from, head_row.hmac_marker)
            holders = {
                (row.project, row.environment): Holder(row.version, row.revision)
                for row in conn.execute(select(environment))
            }
            return verify_chain(
                _chain_rows(conn, None if since is None else since.seq),
                head=None if head_row is None else (head_row.last_seq, head_row.last_hash),
                holders=holders,
                key=self._key,
                hmac_from=hmac_from,
                anchor=anchor,
                infer_hmac_from=head_row is None,
                since=since,
                fingerprint=fingerprint,
                database=database_id(self.url),
            )

    def verified(self, checkpoint_file: Path) -> Verification:
        """:meth:`verify` from the checkpoint kept in ``checkpoint_file``, keeping the new one.

        The first verification (no checkpoint, or one that does not check out: another
        database's, or without a valid HMAC under this ledger's key) replays the whole chain;
        the next ones only what was appended since. The file is replaced only after a
        successful verification; failing to write it costs the next call a full replay.

        Raises:
            LedgerKeyError: see :meth:`verify`.
        """
        try:
            text = checkpoint_file.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):
            text = ""
        since = read_checkpoint(text, self._key, database_id(self.url)) if text else None
        result = self.verify(since=since)
        if result.ok and result.checkpoint is not None and result.checkpoint != since:
            try:
                _write_atomically(checkpoint_file, checkpoint_text(result.checkpoint, self._key))
            except OSError as error:
                log.warning("could not keep the ledger checkpoint %s: %s", checkpoint_file, error)
        return result

    def enable_hmac(self) -> int:
        """Key the chain with this ledger's key from the next entry on; return that seq.

        The explicit switch for a chain started without a key (an empty chain written with a key
        is keyed from entry 1 without it). Entries before stay plain SHA-256 and are protected by
        the first keyed entry, whose HMAC covers their last hash. Idempotent for the same key.

        Raises:
            LedgerKeyError: no key is configured, or the chain is keyed with another key.
        """
        if self._key is None:
            raise LedgerKeyError("enabling HMAC needs MODELOPS_LEDGER_KEY")
        with self._db.errors(), self._db.write() as conn:
            tip = self._lock_head(conn, switching=True)
            if tip.hmac_from is None:
                tip.hmac_from, tip.start_hmac = tip.last_seq + 1, True
                self._save_head(conn, tip)
            return tip.hmac_from

    def close(self) -> None:
        """Release pooled connections; the ledger reconnects on next use."""
        self._db.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "key": self._key, "lock_timeout_s": self._lock_timeout_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["url"],
            key=state.get("key"),
            lock_timeout_s=state.get("lock_timeout_s", 30.0),
        )

    def __repr__(self) -> str:
        return f"Ledger({self._db.safe_url()!r})"

    # ----------------------------------------------------------------------------- storage

    def _lock_head(self, conn: Connection, *, switching: bool = False) -> _Tip:
        """Lock the head row; the end of the chain and the key the next entries are hashed with.

        Raises:
            LedgerIntegrityError: the head row is missing.
            LedgerKeyError: see :func:`modelops.core.ledger.writing_key`.
        """
        from sqlalchemy import select

        _, ledger, _, head = tables()
        row = conn.execute(
            select(head.c.last_seq, head.c.last_hash, head.c.hmac_from, head.c.hmac_marker)
            .where(head.c.id == 1)
            .with_for_update()
        ).one_or_none()
        if row is None:
            raise LedgerIntegrityError(_HEAD_MISSING)
        last_seq, last_hash, hmac_from, marker = int(row[0]), str(row[1]), row[2], row[3]
        if switching:
            check_key(self._key, hmac_from, marker)
            key: bytes | None = self._key
        else:
            key, hmac_from_after = writing_key(self._key, hmac_from, marker, last_seq)
        last_at = None
        if last_seq:
            stored = conn.execute(select(ledger.c.at).where(ledger.c.seq == last_seq)).scalar()
            last_at = None if stored is None else as_utc(stored)
        if switching:
            return _Tip(last_seq, last_hash, last_at, key, hmac_from, False)
        return _Tip(
            last_seq,
            last_hash,
            last_at,
            key,
            hmac_from_after,
            start_hmac=hmac_from is None and hmac_from_after is not None,
        )

    def _append(self, conn: Connection, entry: LedgerEntry, tip: _Tip) -> RecordedEntry:
        """Insert ``entry`` after ``tip`` and advance ``tip`` (the head is saved by the caller)."""
        from sqlalchemy import insert

        _, ledger, _, _ = tables()
        entry_recorded, details = sealed(
            entry,
            seq=tip.last_seq + 1,
            at=next_time(datetime.now(UTC), tip.last_at),
            prev_hash=tip.last_hash,
            hmac_from=tip.hmac_from,
            key=tip.key,
        )
        conn.execute(
            insert(ledger).values(
                seq=entry_recorded.seq,
                at=entry_recorded.at,
                action=entry_recorded.action,
                project=entry_recorded.project,
                environment=entry_recorded.environment,
                actor=entry_recorded.actor,
                reason=entry_recorded.reason,
                from_version=entry_recorded.from_version,
                to_version=entry_recorded.to_version,
                verdict_id=entry_recorded.verdict_id,
                details=details,
                prev_hash=entry_recorded.prev_hash,
                hash=entry_recorded.hash,
            )
        )
        tip.last_seq, tip.last_hash = entry_recorded.seq, entry_recorded.hash
        tip.last_at = entry_recorded.at
        return entry_recorded

    def _save_head(self, conn: Connection, tip: _Tip) -> None:
        from sqlalchemy import update

        _, _, _, head = tables()
        values: dict[str, Any] = {"last_seq": tip.last_seq, "last_hash": tip.last_hash}
        if tip.start_hmac:
            assert tip.key is not None and tip.hmac_from is not None
            values.update(hmac_from=tip.hmac_from, hmac_marker=hmac_marker(tip.key, tip.hmac_from))
        result = conn.execute(update(head).where(head.c.id == 1).values(**values))
        if result.rowcount != 1:
            raise LedgerIntegrityError(_HEAD_MISSING)

    def _transition(
        self, entry: LedgerEntry, expected: Holder, preceding: Sequence[LedgerEntry]
    ) -> RecordedEntry:
        from sqlalchemy.exc import IntegrityError

        try:
            with self._db.write() as conn:
                tip = self._lock_head(conn)
                current = self._holder(conn, entry.project, entry.environment)
                if current.revision != expected.revision:
                    raise holder_changed(entry, expected, current)
                for before in preceding:
                    self._append(conn, before, tip)
                entry_recorded = self._append(conn, entry, tip)
                self._swap_holder(conn, entry, expected, entry_recorded.at)
                self._save_head(conn, tip)
                return entry_recorded
        except (IntegrityError, _Conflict):
            with self._db.read() as conn:
                current = self._holder(conn, entry.project, entry.environment)
            if current.revision == expected.revision:
                raise  # not the environment row: a bug, keep the traceback
            raise holder_changed(entry, expected, current) from None

    @staticmethod
    def _swap_holder(conn: Connection, entry: LedgerEntry, expected: Holder, at: datetime) -> None:
        """Compare-and-swap the holder row from ``expected`` to ``entry.to_version``.

        Raises:
            _Conflict: the row is no longer at ``expected.revision``.
            IntegrityError: a first holder was inserted meanwhile.
        """
        from sqlalchemy import insert, update

        _, _, environment, _ = tables()
        if expected.revision == 0:
            conn.execute(
                insert(environment).values(
                    project=entry.project,
                    environment=entry.environment,
                    version=entry.to_version,
                    revision=1,
                    updated_at=at,
                )
            )
            return
        result = conn.execute(
            update(environment)
            .where(
                environment.c.project == entry.project,
                environment.c.environment == entry.environment,
                environment.c.revision == expected.revision,
            )
            .values(
                version=entry.to_version,
                revision=environment.c.revision + 1,
                updated_at=at,
            )
        )
        if result.rowcount != 1:
            raise _Conflict

    @staticmethod
    def _holder(conn: Connection, project: str, environment: str) -> Holder:
        from sqlalchemy import select

        _, _, table, _ = tables()
        row = conn.execute(
            select(table.c.version, table.c.revision).where(
                table.c.project == project, table.c.environment == environment
            )
        ).one_or_none()
        return Holder(version=None, revision=0) if row is None else Holder(row[0], row[1])

    def _transitions(self, project: str, environment: str) -> Iterator[RecordedEntry]:
        """The promote and rollback entries of (project, environment) in seq order, read when
        first iterated (all at once, in one transaction)."""
        from sqlalchemy import select

        _, ledger, _, _ = tables()
        query = (
            select(ledger)
            .where(
                ledger.c.project == project,
                ledger.c.environment == environment,
                ledger.c.action.in_(TRANSITIONS),
            )
            .order_by(ledger.c.seq)
        )
        with self._db.errors(), self._db.read() as conn:
            transitions = [recorded(row) for row in conn.execute(query)]
        yield from transitions


def _chain_rows(conn: Connection, first: int | None) -> Iterator[ChainRow]:
    """The entries from seq ``first`` on (every entry when None), in seq order, for the verifier.

    Read a page of ``_STREAM_BATCH`` rows per plain query, keyed on seq, inside the caller's
    snapshot transaction: memory stays flat on a long chain, and the few entries after a
    checkpoint cost one round trip (a server-side cursor costs its declare, fetch and close).
    The first page has no lower bound without ``first``, so no row escapes a full verification.
    """
    from sqlalchemy import select

    _, ledger, _, _ = tables()
    query = select(*chain_columns()).order_by(ledger.c.seq).limit(_STREAM_BATCH)
    page = query if first is None else query.where(ledger.c.seq >= first)
    while True:
        rows = conn.execute(page).all()
        for values in rows:
            yield chain_row(values)
        if len(rows) < _STREAM_BATCH:
            return
        page = query.where(ledger.c.seq > rows[-1][0])


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


class _Conflict(Exception):
    """The compare-and-swap UPDATE matched no row."""
