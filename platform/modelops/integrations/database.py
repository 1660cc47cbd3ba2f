"""The platform database: storage, locks and schema of the ledger and the environment holders.

Every validation, promotion, approval, refusal and rollback becomes one row of
``modelops_ledger``; the rows form the hash chain of :mod:`modelops.core.ledger` (plain SHA-256,
or HMAC-SHA256 under ``key``). ``modelops_ledger_head`` (one row) records the last ``seq`` and
hash and, for a keyed chain, from which ``seq`` it is keyed. ``modelops_environment`` holds the
version serving each (project, environment) and a revision counter; :meth:`Ledger.transition`
moves it by compare-and-swap and appends the matching entries in the same transaction, so of two
concurrent promotions exactly one wins and the ledger always agrees with the holder.

Serialisation: every write transaction starts by taking the write lock on the head row
(``SELECT ... FOR UPDATE`` on PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite), so writers in several
processes or hosts chain one after another and the chain never forks. ``at`` is set inside that
lock and is strictly increasing in ``seq`` order. No lock is waited for longer than
``lock_timeout_s`` (PostgreSQL ``lock_timeout`` and ``statement_timeout``, set per transaction
with ``SET LOCAL``; SQLite's busy timeout): then :class:`LedgerLockedError`.

Schema: created and upgraded by the Alembic migrations in ``migrations/`` (version table
``modelops_alembic_version``, so the database may be shared with MLflow's own Alembic). The first
use of a :class:`Ledger` upgrades to head, serialised by an advisory lock on PostgreSQL and by
``BEGIN IMMEDIATE`` on SQLite; a database created before the migrations existed (tables but no
version table) is stamped at the first revision and upgraded, keeping its rows.

Guards (they stop accidents and casual edits, not a database superuser or anyone with the SQLite
file, who can drop them; :meth:`Ledger.verify` is what detects the rest):

- ``modelops_ledger`` rejects ``UPDATE``, ``DELETE`` and ``TRUNCATE`` (appends stay allowed);
- ``modelops_ledger_head`` and ``modelops_environment`` reject ``DELETE`` and ``TRUNCATE``, and
  ``INSERT``/``UPDATE`` unless made through the ledger: on PostgreSQL a transaction that ran
  ``SET LOCAL modelops.writer = 'ledger'``; on SQLite a connection that registered the SQL
  function ``modelops_ledger_writer()`` (the ledger's connections do).

Keys: a ledger whose first entry is written with a key is HMAC-keyed from entry 1. A ledger that
already has plain entries is never switched implicitly: writers with a key are refused until
:meth:`Ledger.enable_hmac` records, in the head, from which seq on it is keyed (with a marker only
the key can produce). A keyed ledger refuses writers and verifiers without the key, or with
another one, in one line.

Trust: verify() proves the chain is internally consistent and that the holder table is what the
transitions add up to. With a key, nobody without the key can forge or edit an entry undetected
(without one, anyone able to write the database can append a consistent forgery). Cutting the
newest entries (or wiping everything) and moving the head back is only caught against an anchor
(:meth:`Ledger.anchor`, kept outside the database).

SQLAlchemy and Alembic are imported lazily so that importing this module stays cheap.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.core.errors import ConfigError, ModelopsError, ServiceUnavailableError
from modelops.core.ledger import (
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
    chain_hash,
    check_key,
    content_json,
    format_anchor,
    format_time,
    hmac_marker,
    is_signed,
    parse_anchor,
    shown,
    verify_chain,
    writing_key,
)

if TYPE_CHECKING:
    from sqlalchemy import MetaData, Table
    from sqlalchemy.engine import Connection, Engine, Row

__all__ = [
    "ACTIONS",
    "GENESIS_HASH",
    "HEAD_REVISION",
    "TRANSITIONS",
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

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "modelops_alembic_version"
REVISIONS = ("0001", "0002")
"""Every migration this code knows, oldest first."""
HEAD_REVISION = REVISIONS[-1]
BASELINE_REVISION = REVISIONS[0]
"""The schema of databases created before the migrations: stamped when adopted."""

_ADVISORY_LOCK_KEY = 0x6D6F64656C6F7073  # "modelops": serialises schema setup on PostgreSQL
_READ_ONLY = "modelops_read_only"
_SQLITE_WRITER_FUNCTION = "modelops_ledger_writer"
_LOCK_SQLSTATES = ("55P03", "57014")  # lock_not_available, query_canceled (statement_timeout)
_STREAM_BATCH = 5000
_LEGACY_COLUMNS = {
    "modelops_ledger": {
        "seq",
        "at",
        "action",
        "project",
        "environment",
        "actor",
        "reason",
        "from_version",
        "to_version",
        "verdict_id",
        "details",
        "prev_hash",
        "hash",
    },
    "modelops_environment": {"project", "environment", "version", "revision", "updated_at"},
    "modelops_ledger_head": {"id", "last_seq", "last_hash"},
}


def _as_utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; the ledger only ever writes UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _at_text(value: Any) -> str:
    """A stored ``at`` as the hashed text, without building a datetime when SQLite gives text."""
    if isinstance(value, str):
        # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC, see _as_utc)
        if len(value) == 26 and value[10] == " " and value[19] == ".":
            return f"{value[:10]}T{value[11:]}Z"
        return format_time(_as_utc(datetime.fromisoformat(value)))
    return format_time(_as_utc(value))


_TABLES: dict[str, Table] = {}


def _schema() -> tuple[MetaData, Table, Table, Table]:
    """The three tables as the queries see them (the migrations own the DDL)."""
    if not _TABLES:
        from sqlalchemy import (
            BigInteger,
            Column,
            DateTime,
            Integer,
            MetaData,
            String,
            Table,
            Text,
        )

        metadata = MetaData()
        _TABLES["ledger"] = Table(
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
        )
        _TABLES["environment"] = Table(
            "modelops_environment",
            metadata,
            Column("project", String(200), primary_key=True),
            Column("environment", String(200), primary_key=True),
            Column("version", String(200)),
            Column("revision", Integer, nullable=False),
            Column("updated_at", DateTime(timezone=True), nullable=False),
        )
        _TABLES["head"] = Table(
            "modelops_ledger_head",
            metadata,
            Column("id", Integer, primary_key=True, autoincrement=False),
            Column("last_seq", BigInteger, nullable=False),
            Column("last_hash", String(64), nullable=False),
            Column("hmac_from", BigInteger),
            Column("hmac_marker", String(64)),
        )
    ledger = _TABLES["ledger"]
    return ledger.metadata, ledger, _TABLES["environment"], _TABLES["head"]


@dataclass
class _Tip:
    """The end of the chain inside one write transaction (the head row, locked)."""

    last_seq: int
    last_hash: str
    last_at: datetime | None
    key: bytes | None
    hmac_from: int | None
    start_hmac: bool  # the head does not record hmac_from yet: write it with the next entry


_HEAD_MISSING = (
    "the ledger head row is missing (modelops_ledger_head was emptied): writes are blocked; "
    "restore it from a backup and run 'modelops history --verify'"
)


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
        self._engine_: Engine | None = None
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
        if entry.action in TRANSITIONS:
            raise ValueError(
                f"{entry.action} changes who holds the environment; record it with transition()"
            )
        with self._errors(), self._write() as conn:
            tip = self._lock_head(conn)
            recorded = self._append(conn, entry, tip)
            self._save_head(conn, tip)
            return recorded

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
            ValueError: ``entry`` is not a promote or rollback, has no ``to_version``, or its
                ``from_version`` differs from ``expected.version``; or one of ``preceding`` is a
                promote or rollback.
            HolderChangedError: (a :class:`ConcurrentChangeError`) the holder is no longer
                ``expected``; ``current`` says who holds it now.
        """
        if entry.action not in TRANSITIONS:
            raise ValueError(f"transition() records {TRANSITIONS}, not {entry.action!r}")
        if not entry.to_version:
            raise ValueError(
                f"{entry.action} of {entry.project}/{entry.environment}: no to_version"
            )
        if entry.from_version != expected.version:
            raise ValueError(
                f"{entry.action} of {entry.project}/{entry.environment}: from_version "
                f"{entry.from_version!r} differs from the expected holder {expected.version!r}"
            )
        for before in preceding:
            if before.action in TRANSITIONS:
                raise ValueError(
                    f"transition(): a preceding {before.action} would move a holder without "
                    "its compare-and-swap"
                )
        if self._before_swap is not None:
            self._before_swap()
        try:
            with self._errors():
                return self._transition(entry, expected, preceding)
        except HolderChangedError as lost:
            if not refuse_on_conflict:
                raise
            try:
                lost.refusal = self._record_refusal(entry, expected, preceding, lost.current)
            except ModelopsError:
                # the lost race is what the caller must hear about; the refusal is a courtesy
                log.warning("could not record the refusal of a lost race", exc_info=True)
            raise

    def _record_refusal(
        self,
        entry: LedgerEntry,
        expected: Holder,
        preceding: Sequence[LedgerEntry],
        current: Holder,
    ) -> RecordedEntry:
        return self.append(
            LedgerEntry(
                action="refuse",
                project=entry.project,
                environment=entry.environment,
                actor=entry.actor,
                reason=(
                    f"{entry.action} of {shown(entry.to_version)} lost a race: "
                    f"{entry.environment} is now held by {shown(current.version)} "
                    f"(revision {current.revision}), not {shown(expected.version)} "
                    f"(revision {expected.revision})"
                ),
                from_version=current.version,
                to_version=entry.to_version,
                verdict_id=entry.verdict_id,
                details={
                    "lost_race": True,
                    "attempted": entry.action,
                    "expected": {
                        "version": expected.version,
                        "revision": expected.revision,
                    },
                    "current": {
                        "version": current.version,
                        "revision": current.revision,
                    },
                    "withdrawn": [
                        {"action": e.action, "actor": e.actor, "reason": e.reason}
                        for e in preceding
                    ],
                },
            )
        )

    def holder(self, project: str, environment: str) -> Holder:
        """The version holding (project, environment) now, and its revision."""
        with self._errors(), self._read() as conn:
            return self._holder(conn, project, environment)

    def head(self) -> tuple[int, str]:
        """The last seq and its hash ((0, 64 zeros) when empty): the anchor to keep elsewhere.

        Raises:
            LedgerIntegrityError: the head row is missing.
        """
        from sqlalchemy import select

        _, _, _, head = _schema()
        with self._errors(), self._read() as conn:
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

        _, ledger, _, _ = _schema()
        query = select(ledger).order_by(ledger.c.seq)
        if project is not None:
            query = query.where(ledger.c.project == project)
        if environment is not None:
            query = query.where(ledger.c.environment == environment)
        with self._errors(), self._read() as conn:
            return [self._recorded(row) for row in conn.execute(query)]

    def holder_at(self, project: str, environment: str, at: datetime) -> str | None:
        """The version that held (project, environment) at ``at`` (inclusive), None if nobody.

        Derived from the promote and rollback entries: an entry recorded exactly at ``at`` counts.

        Raises:
            ValueError: ``at`` is naive.
        """
        if at.tzinfo is None:
            raise ValueError("holder_at() needs a timezone-aware datetime")
        held: str | None = None
        for entry in self._transitions(project, environment):
            if entry.at > at:
                break
            held = entry.to_version
        return held

    def past_holders(self, project: str, environment: str) -> list[str]:
        """Distinct versions that held (project, environment), most recent (the holder) first."""
        seen: list[str] = []
        for entry in reversed(self._transitions(project, environment)):
            if entry.to_version is not None and entry.to_version not in seen:
                seen.append(entry.to_version)
        return seen

    def signed(self, entry: RecordedEntry) -> bool:
        """Whether ``entry`` carries a valid HMAC under this ledger's key (False without a key).

        Proves the entry was written by a holder of the key, as recorded (its content, seq and
        place in the chain); it does not prove the entry is still in the database (verify does).
        """
        return is_signed(entry, self._key)

    def verify(self, anchor: str | None = None) -> Verification:
        """Re-compute the chain, compare it with the head, ``anchor`` and the holder table.

        Streams the rows (constant memory) in one consistent snapshot. See
        :func:`modelops.core.ledger.verify_chain` for what is detected; ``anchor`` is a previous
        ``Verification.anchor`` or :meth:`anchor`, ``"<seq>:<hash>"``.

        Raises:
            ConfigError: ``anchor`` is malformed.
            LedgerKeyError: the chain is HMAC-keyed and no key (or another key) is configured.
        """
        from sqlalchemy import String, select, type_coerce

        if anchor is not None:
            parse_anchor(anchor)
        _, ledger, environment, head = _schema()
        columns = [
            ledger.c.seq,
            type_coerce(ledger.c.at, String),  # SQLite: the stored text, parsed by _at_text
            ledger.c.action,
            ledger.c.project,
            ledger.c.environment,
            ledger.c.actor,
            ledger.c.reason,
            ledger.c.from_version,
            ledger.c.to_version,
            ledger.c.verdict_id,
            ledger.c.details,
            ledger.c.prev_hash,
            ledger.c.hash,
        ]
        with self._errors(), self._read(snapshot=True) as conn:
            head_row = conn.execute(select(head).where(head.c.id == 1)).one_or_none()
            hmac_from = None if head_row is None else head_row.hmac_from
            if head_row is not None:
                check_key(self._key, hmac_from, head_row.hmac_marker)
            holders = {
                (row.project, row.environment): Holder(row.version, row.revision)
                for row in conn.execute(select(environment))
            }
            result = conn.execution_options(yield_per=_STREAM_BATCH).execute(
                select(*columns).order_by(ledger.c.seq)
            )
            rows = (ChainRow(r[0], _at_text(r[1]), *r[2:]) for r in result)
            return verify_chain(
                rows,
                head=None if head_row is None else (head_row.last_seq, head_row.last_hash),
                holders=holders,
                key=self._key,
                hmac_from=hmac_from,
                anchor=anchor,
                infer_hmac_from=head_row is None,
            )

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
        with self._errors(), self._write() as conn:
            tip = self._lock_head(conn, switching=True)
            if tip.hmac_from is None:
                tip.hmac_from, tip.start_hmac = tip.last_seq + 1, True
                self._save_head(conn, tip)
            return tip.hmac_from

    def close(self) -> None:
        """Release pooled connections; the ledger reconnects on next use."""
        if self._engine_ is not None:
            self._engine_.dispose()
            self._engine_ = None

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "key": self._key, "lock_timeout_s": self._lock_timeout_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["url"],
            key=state.get("key"),
            lock_timeout_s=state.get("lock_timeout_s", 30.0),
        )

    def __repr__(self) -> str:
        return f"Ledger({self._safe_url()!r})"

    # ----------------------------------------------------------------------------- internals

    def _safe_url(self) -> str:
        try:
            from sqlalchemy.engine import make_url

            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:
            return "<unparseable database URL>"

    def _locked_message(self) -> str:
        return (
            f"the ledger is locked by another writer (waited {self._lock_timeout_s:g} s); try again"
        )

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Database trouble as one line: locked, unavailable or damaged."""
        from sqlalchemy import exc

        try:
            yield
        except (exc.OperationalError, exc.InterfaceError, exc.ProgrammingError) as error:
            orig = error.orig
            reason = str(orig or error).strip().splitlines()
            first = reason[0].strip() if reason else type(error).__name__
            state = getattr(orig, "sqlstate", None)
            if state in _LOCK_SQLSTATES or "database is locked" in first:
                raise LedgerLockedError(self._locked_message()) from error
            if state == "42P01" or first.startswith("no such table"):
                raise LedgerIntegrityError(
                    f"platform database {self._safe_url()} lacks a ledger table ({first}); dropped?"
                ) from error
            if isinstance(error, exc.ProgrammingError):
                raise
            raise ServiceUnavailableError(
                f"platform database {self._safe_url()} unavailable: {first}"
            ) from error
        except exc.TimeoutError as error:
            raise ServiceUnavailableError(
                f"platform database {self._safe_url()} unavailable: connection pool timed out"
            ) from error

    def _engine(self) -> Engine:
        if self._engine_ is None:
            engine = self._create_engine()
            try:
                self._setup(engine)
            except BaseException:
                engine.dispose()
                raise
            self._engine_ = engine
        return self._engine_

    def _create_engine(self) -> Engine:
        from sqlalchemy import create_engine, event
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        try:
            url = make_url(self.url)
        except ArgumentError as error:
            raise ConfigError(f"platform database URL is not valid: {error}") from error
        try:
            if url.get_backend_name() == "sqlite":
                self._make_sqlite_directory(url.database)
                engine = create_engine(url, connect_args={"timeout": self._lock_timeout_s})

                @event.listens_for(engine, "connect")
                def _connect(dbapi_connection: Any, record: Any) -> None:
                    dbapi_connection.isolation_level = None
                    # The guard triggers let head and holder writes through only on connections
                    # that have this function: the ledger's own.
                    dbapi_connection.create_function(
                        _SQLITE_WRITER_FUNCTION, 0, _one, deterministic=True
                    )

                @event.listens_for(engine, "begin")
                def _begin(conn: Connection) -> None:
                    # Writers take SQLite's write lock up front, so read-modify-write of the head
                    # row cannot interleave; readers start a plain deferred transaction.
                    deferred = conn.get_execution_options().get(_READ_ONLY)
                    conn.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")

                return engine
            connect_args = {"connect_timeout": 10} if url.get_backend_name() == "postgresql" else {}
            return create_engine(
                url,
                connect_args=connect_args,
                pool_pre_ping=True,
                isolation_level="READ COMMITTED",
            )
        except (ArgumentError, NoSuchModuleError) as error:
            raise ConfigError(
                f"platform database URL {self._safe_url()} is not usable: {error}"
            ) from error

    def _make_sqlite_directory(self, database: str | None) -> None:
        if not database or database == ":memory:" or database.startswith("file:"):
            return
        parent = Path(database).expanduser().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ServiceUnavailableError(
                f"platform database {self._safe_url()} unavailable: cannot create {parent}: "
                f"{error.strerror or error}"
            ) from error

    # ------------------------------------------------------------------ schema (Alembic)

    def _setup(self, engine: Engine) -> None:
        """Migrate the schema to head unless it is there already (one cheap query then)."""
        with self._errors():
            with engine.connect() as conn:
                conn.execution_options(**{_READ_ONLY: True})
                with conn.begin():
                    current = _schema_revision(conn)
            if current == HEAD_REVISION:
                return
            self._check_known(current)
            with engine.begin() as conn:
                self._session(conn, writer=True)
                if engine.dialect.name == "postgresql":
                    # Several processes may set up a fresh database at once; DDL is transactional.
                    from sqlalchemy import text

                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY}
                    )
                self._migrate(conn)

    def _check_known(self, revision: str | None) -> None:
        if revision is not None and revision not in REVISIONS:
            raise ConfigError(
                f"platform database {self._safe_url()} has schema revision {revision}, which "
                f"this modelops does not know (its newest is {HEAD_REVISION}): upgrade modelops"
            )

    def _migrate(self, conn: Connection) -> None:
        """Under the setup lock: adopt a pre-migration database, then upgrade to head."""
        from alembic import command
        from alembic.config import Config
        from sqlalchemy import inspect

        inspector = inspect(conn)
        current = _schema_revision(conn)
        self._check_known(current)
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
        config.attributes["connection"] = conn
        config.attributes["version_table"] = VERSION_TABLE
        if current is None and inspector.has_table("modelops_ledger"):
            for table, needed in _LEGACY_COLUMNS.items():
                have = {c["name"] for c in inspector.get_columns(table)}
                if not inspector.has_table(table) or not needed <= have:
                    raise ConfigError(
                        f"platform database {self._safe_url()} has modelops tables of an unknown "
                        f"schema ({table} lacks {', '.join(sorted(needed - have))}); not adopting"
                    )
            command.stamp(config, BASELINE_REVISION)
        command.upgrade(config, HEAD_REVISION)

    # ------------------------------------------------------------------ transactions

    def _session(self, conn: Connection, *, writer: bool) -> None:
        """PostgreSQL: this transaction's timeouts and (writers) the guard triggers' pass."""
        if conn.dialect.name != "postgresql":
            return
        from sqlalchemy import text

        timeout = f"{max(1, round(self._lock_timeout_s * 1000))}ms"
        conn.execute(
            text(
                "SELECT set_config('lock_timeout', :timeout, true), "
                "set_config('statement_timeout', :timeout, true), "
                "set_config('modelops.writer', :writer, true)"
            ),
            {"timeout": timeout, "writer": "ledger" if writer else ""},
        )

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._engine().begin() as conn:
            self._session(conn, writer=True)
            yield conn

    @contextmanager
    def _read(self, *, snapshot: bool = False) -> Iterator[Connection]:
        with self._engine().connect() as conn:
            conn.execution_options(**{_READ_ONLY: True})
            if snapshot and conn.dialect.name == "postgresql":
                # One snapshot for head, holders and every row, however long the scan.
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                self._session(conn, writer=False)
                yield conn

    def _lock_head(self, conn: Connection, *, switching: bool = False) -> _Tip:
        """Lock the head row; the end of the chain and the key the next entries are hashed with.

        Raises:
            LedgerIntegrityError: the head row is missing.
            LedgerKeyError: see :func:`modelops.core.ledger.writing_key`.
        """
        from sqlalchemy import select

        _, ledger, _, head = _schema()
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
            last_at = None if stored is None else _as_utc(stored)
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

        _, ledger, _, _ = _schema()
        now = datetime.now(UTC)
        if tip.last_at is not None:
            # Strictly increasing in seq order, whatever the clocks of the writers say.
            now = max(now, tip.last_at + timedelta(microseconds=1))
        seq = tip.last_seq + 1
        details = canonical(entry.details)
        content = content_json(
            seq=seq,
            at=format_time(now),
            action=entry.action,
            project=entry.project,
            environment=entry.environment,
            actor=entry.actor,
            reason=entry.reason,
            from_version=entry.from_version,
            to_version=entry.to_version,
            verdict_id=entry.verdict_id,
            details=details,
            prev_hash=tip.last_hash,
        )
        keyed = tip.hmac_from is not None and seq >= tip.hmac_from
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
            at=now,
            prev_hash=tip.last_hash,
            hash=chain_hash(content, tip.last_hash, tip.key if keyed else None),
        )
        conn.execute(
            insert(ledger).values(
                seq=recorded.seq,
                at=recorded.at,
                action=recorded.action,
                project=recorded.project,
                environment=recorded.environment,
                actor=recorded.actor,
                reason=recorded.reason,
                from_version=recorded.from_version,
                to_version=recorded.to_version,
                verdict_id=recorded.verdict_id,
                details=details,
                prev_hash=recorded.prev_hash,
                hash=recorded.hash,
            )
        )
        tip.last_seq, tip.last_hash, tip.last_at = seq, recorded.hash, now
        return recorded

    def _save_head(self, conn: Connection, tip: _Tip) -> None:
        from sqlalchemy import update

        _, _, _, head = _schema()
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
        from sqlalchemy import insert, update
        from sqlalchemy.exc import IntegrityError

        _, _, environment, _ = _schema()
        try:
            with self._write() as conn:
                tip = self._lock_head(conn)
                current = self._holder(conn, entry.project, entry.environment)
                if current.revision != expected.revision:
                    raise self._conflict(entry, expected, current)
                for before in preceding:
                    self._append(conn, before, tip)
                recorded = self._append(conn, entry, tip)
                if expected.revision == 0:
                    conn.execute(
                        insert(environment).values(
                            project=entry.project,
                            environment=entry.environment,
                            version=entry.to_version,
                            revision=1,
                            updated_at=recorded.at,
                        )
                    )
                else:
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
                            updated_at=recorded.at,
                        )
                    )
                    if result.rowcount != 1:
                        raise _Conflict
                self._save_head(conn, tip)
                return recorded
        except (IntegrityError, _Conflict):
            with self._read() as conn:
                current = self._holder(conn, entry.project, entry.environment)
            if current.revision == expected.revision:
                raise  # not the environment row: a bug, keep the traceback
            raise self._conflict(entry, expected, current) from None

    @staticmethod
    def _holder(conn: Connection, project: str, environment: str) -> Holder:
        from sqlalchemy import select

        _, _, table, _ = _schema()
        row = conn.execute(
            select(table.c.version, table.c.revision).where(
                table.c.project == project, table.c.environment == environment
            )
        ).one_or_none()
        return Holder(version=None, revision=0) if row is None else Holder(row[0], row[1])

    @staticmethod
    def _conflict(entry: LedgerEntry, expected: Holder, current: Holder) -> HolderChangedError:
        return HolderChangedError(
            f"{entry.project}/{entry.environment} changed: {shown(expected.version)} is now "
            f"held by {shown(current.version)} (revision {current.revision}); validate against "
            "the new holder and retry",
            expected=expected,
            current=current,
        )

    def _transitions(self, project: str, environment: str) -> list[RecordedEntry]:
        from sqlalchemy import select

        _, ledger, _, _ = _schema()
        query = (
            select(ledger)
            .where(
                ledger.c.project == project,
                ledger.c.environment == environment,
                ledger.c.action.in_(TRANSITIONS),
            )
            .order_by(ledger.c.seq)
        )
        with self._errors(), self._read() as conn:
            return [self._recorded(row) for row in conn.execute(query)]

    @staticmethod
    def _recorded(row: Row[Any]) -> RecordedEntry:
        try:
            return RecordedEntry(
                action=row.action,
                project=row.project,
                environment=row.environment,
                actor=row.actor,
                reason=row.reason,
                from_version=row.from_version,
                to_version=row.to_version,
                verdict_id=row.verdict_id,
                details=json.loads(row.details),
                seq=row.seq,
                at=_as_utc(row.at),
                prev_hash=row.prev_hash,
                hash=row.hash,
            )
        except (TypeError, ValueError) as error:
            raise LedgerIntegrityError(
                f"ledger entry {row.seq} is not a valid entry (edited?): {error}"
            ) from error


class _Conflict(Exception):
    """The compare-and-swap UPDATE matched no row."""


def _one() -> int:
    return 1


def _schema_revision(conn: Connection) -> str | None:
    """The Alembic revision of the ledger schema, None before the migrations ran."""
    from sqlalchemy import inspect, text

    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
