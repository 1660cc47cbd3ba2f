"""The connection to the platform database: engine, transactions, timeouts, errors in one line.

Serialisation: every write transaction starts by taking the write lock (``BEGIN IMMEDIATE`` on
SQLite; on PostgreSQL the ledger locks its head row with ``SELECT ... FOR UPDATE``). No lock is
waited for longer than ``lock_timeout_s`` (PostgreSQL ``lock_timeout`` and
``statement_timeout``, set per transaction with ``SET LOCAL``; SQLite's busy timeout): then
:class:`~modelops.core.ledger.LedgerLockedError`.

Writers are let through the guard triggers (see :mod:`.migrate`): on PostgreSQL a transaction
that ran ``SET LOCAL modelops.writer = 'ledger'``; on SQLite a connection that registered the SQL
function ``modelops_ledger_writer()``; both are done here. The schema is migrated to head on
first use (:func:`modelops.integrations.database.migrate.setup`).

SQLAlchemy is imported lazily so that importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.core.errors import ConfigError, ServiceUnavailableError
from modelops.core.ledger import LedgerIntegrityError, LedgerLockedError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

READ_ONLY = "modelops_read_only"
"""Execution option of connections that only read (SQLite: a deferred transaction)."""
_SQLITE_WRITER_FUNCTION = "modelops_ledger_writer"
_LOCK_SQLSTATES = ("55P03", "57014")  # lock_not_available, query_canceled (statement_timeout)


class Database:
    """The platform database at ``url``, opened (and migrated) on first use.

    ``url`` is a SQLAlchemy URL: ``sqlite:///<path>`` (embedded profile) or
    ``postgresql+psycopg://...`` (production); ``lock_timeout_s`` bounds every lock wait.
    """

    def __init__(self, url: str, lock_timeout_s: float) -> None:
        self.url = url
        self.lock_timeout_s = lock_timeout_s
        self._engine: Engine | None = None

    def safe_url(self) -> str:
        """The URL without its password, for messages."""
        try:
            from sqlalchemy.engine import make_url

            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:
            return "<unparseable database URL>"

    @contextmanager
    def errors(self) -> Iterator[None]:
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
                raise LedgerLockedError(
                    f"the ledger is locked by another writer (waited {self.lock_timeout_s:g} s); "
                    "try again"
                ) from error
            if state == "42P01" or first.startswith("no such table"):
                raise LedgerIntegrityError(
                    f"platform database {self.safe_url()} lacks a ledger table ({first}); dropped?"
                ) from error
            if isinstance(error, exc.ProgrammingError):
                raise
            raise ServiceUnavailableError(
                f"platform database {self.safe_url()} unavailable: {first}"
            ) from error
        except exc.TimeoutError as error:
            raise ServiceUnavailableError(
                f"platform database {self.safe_url()} unavailable: connection pool timed out"
            ) from error

    def engine(self) -> Engine:
        """The engine, created and the schema migrated to head on first call."""
        if self._engine is None:
            # migrate uses this module's transactions; imported here, not at the top, to keep
            # the two modules' imports one-way.
            from modelops.integrations.database.migrate import setup

            engine = self._create_engine()
            try:
                setup(self, engine)
            except BaseException:
                engine.dispose()
                raise
            self._engine = engine
        return self._engine

    def close(self) -> None:
        """Release pooled connections; the next use reconnects."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def session(self, conn: Connection, *, writer: bool) -> None:
        """PostgreSQL: this transaction's timeouts and (writers) the guard triggers' pass."""
        if conn.dialect.name != "postgresql":
            return
        from sqlalchemy import text

        timeout = f"{max(1, round(self.lock_timeout_s * 1000))}ms"
        conn.execute(
            text(
                "SELECT set_config('lock_timeout', :timeout, true), "
                "set_config('statement_timeout', :timeout, true), "
                "set_config('modelops.writer', :writer, true)"
            ),
            {"timeout": timeout, "writer": "ledger" if writer else ""},
        )

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (SQLite's write lock taken up front), committed on success."""
        with self.engine().begin() as conn:
            self.session(conn, writer=True)
            yield conn

    @contextmanager
    def read(self, *, snapshot: bool = False) -> Iterator[Connection]:
        """A read transaction; ``snapshot``: one consistent snapshot however long it reads."""
        with self.engine().connect() as conn:
            conn.execution_options(**{READ_ONLY: True})
            if snapshot and conn.dialect.name == "postgresql":
                # One snapshot for head, holders and every row, however long the scan.
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                self.session(conn, writer=False)
                yield conn

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
                engine = create_engine(url, connect_args={"timeout": self.lock_timeout_s})

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
                    deferred = conn.get_execution_options().get(READ_ONLY)
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
                f"platform database URL {self.safe_url()} is not usable: {error}"
            ) from error

    def _make_sqlite_directory(self, database: str | None) -> None:
        if not database or database == ":memory:" or database.startswith("file:"):
            return
        parent = Path(database).expanduser().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ServiceUnavailableError(
                f"platform database {self.safe_url()} unavailable: cannot create {parent}: "
                f"{error.strerror or error}"
            ) from error


def _one() -> int:
    return 1
