"""The platform database: an append-only, tamper-evident ledger and the holder of each environment.

Every validation, promotion, approval, refusal and rollback becomes one row of
``modelops_ledger``. Rows form a hash chain: each row's ``hash`` is the SHA-256 of a canonical JSON
of all its fields, including its ``seq`` and the ``prev_hash`` of the row before (64 zeros for the
first). ``modelops_ledger_head`` (one row) records the last ``seq`` and ``hash``, so deleting the
newest rows is detectable too. :meth:`Ledger.verify` re-computes the chain.

``modelops_environment`` holds the model version serving each (project, environment) and a
revision counter. :meth:`Ledger.transition` changes it with compare-and-swap and appends the
matching ledger entry in the same transaction, so of two concurrent promotions exactly one wins
and the ledger always agrees with the holder.

Serialisation: every write transaction starts by taking the write lock on the head row
(``SELECT ... FOR UPDATE`` on PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite), so writers in several
processes or hosts chain one after another and the hash chain never forks. ``at`` is set by the
ledger inside that lock and is strictly increasing in ``seq`` order.

On PostgreSQL a trigger additionally rejects ``UPDATE``, ``DELETE`` and ``TRUNCATE`` on
``modelops_ledger``. :meth:`Ledger.verify` still matters there: the table owner or a superuser can
drop the trigger, and SQLite has no such protection at all. Note that verify() proves the chain is
internally consistent; someone able to rewrite every row *and* the head consistently is only caught
by comparing the head hash against a copy kept elsewhere.

SQLAlchemy is imported lazily so that importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.core.errors import ConcurrentChangeError, ConfigError, ServiceUnavailableError

if TYPE_CHECKING:
    from sqlalchemy import MetaData, Table
    from sqlalchemy.engine import Connection, Engine, Row

ACTIONS = ("validate", "promote", "approve", "refuse", "rollback")
TRANSITIONS = ("promote", "rollback")
GENESIS_HASH = "0" * 64

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_ADVISORY_LOCK_KEY = 0x6D6F64656C6F7073  # "modelops": serialises schema setup on PostgreSQL
_READ_ONLY = "modelops_read_only"
_TRIGGER = "modelops_ledger_append_only"


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
            _canonical(self.details)
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
    """The result of :meth:`Ledger.verify`: one readable line per problem, naming the seq."""

    ok: bool
    checked: int
    problems: list[str]


def _canonical(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _format_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime(_TIME_FORMAT)


def _content_hash(entry: RecordedEntry) -> str:
    """SHA-256 of the canonical JSON of every field of ``entry`` except ``hash`` itself."""
    content = {
        "seq": entry.seq,
        "at": _format_time(entry.at),
        "action": entry.action,
        "project": entry.project,
        "environment": entry.environment,
        "actor": entry.actor,
        "reason": entry.reason,
        "from_version": entry.from_version,
        "to_version": entry.to_version,
        "verdict_id": entry.verdict_id,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
    }
    return hashlib.sha256(_canonical(content).encode("utf-8")).hexdigest()


def _as_utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; the ledger only ever writes UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _shown(version: str | None) -> str:
    if version is None:
        return "(nobody)"
    return version if version.startswith("v") else f"v{version}"


_TABLES: dict[str, Table] = {}


def _schema() -> tuple[MetaData, Table, Table, Table]:
    """The three tables, built once per process."""
    if not _TABLES:
        from sqlalchemy import (
            BigInteger,
            Column,
            DateTime,
            Index,
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
            Index("ix_modelops_ledger_project_environment", "project", "environment", "seq"),
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
        )
    ledger = _TABLES["ledger"]
    return ledger.metadata, ledger, _TABLES["environment"], _TABLES["head"]


_PG_TRIGGER_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {_TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'modelops_ledger is append-only: % rejected', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""

_PG_TRIGGER = f"""
CREATE TRIGGER {_TRIGGER}
BEFORE UPDATE OR DELETE OR TRUNCATE ON modelops_ledger
FOR EACH STATEMENT EXECUTE FUNCTION {_TRIGGER}()
"""


class Ledger:
    """The ledger and environment holders in the platform database at ``url``.

    ``url`` is a SQLAlchemy URL: ``sqlite:///<path>`` (embedded profile) or
    ``postgresql+psycopg://...`` (production). Nothing is opened or created until first use; then
    the tables (and on PostgreSQL the append-only trigger) are created if missing.

    Raises (from every method that touches the database):
        ServiceUnavailableError: the database cannot be reached or opened.
        ConfigError: ``url`` is not a usable database URL.
    """

    def __init__(self, url: str, *, key: bytes | None = None, lock_timeout_s: float = 30.0) -> None:
        self.url = url
        self._key = key
        self._lock_timeout_s = lock_timeout_s
        self._engine_: Engine | None = None

    # ----------------------------------------------------------------------------- public API

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
            return self._append(conn, entry)

    def transition(self, entry: LedgerEntry, *, expected: Holder) -> RecordedEntry:
        """Move (project, environment) from ``expected`` to ``entry.to_version`` and record it.

        Atomic: the holder changes and the entry is appended in one transaction, or nothing is
        written.

        Raises:
            ValueError: ``entry`` is not a promote or rollback, has no ``to_version``, or its
                ``from_version`` differs from ``expected.version``.
            ConcurrentChangeError: the holder is no longer ``expected``.
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
        from sqlalchemy import insert, update
        from sqlalchemy.exc import IntegrityError

        _, _, environment, _ = _schema()
        with self._errors():
            try:
                with self._write() as conn:
                    locked = self._lock_head(conn)
                    current = self._holder(conn, entry.project, entry.environment)
                    if current.revision != expected.revision:
                        raise self._conflict(entry, expected, current)
                    if expected.revision == 0:
                        conn.execute(
                            insert(environment).values(
                                project=entry.project,
                                environment=entry.environment,
                                version=entry.to_version,
                                revision=1,
                                updated_at=locked[2],
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
                                updated_at=locked[2],
                            )
                        )
                        if result.rowcount != 1:
                            raise _Conflict
                    return self._append(conn, entry, locked=locked)
            except (IntegrityError, _Conflict):
                with self._read() as conn:
                    current = self._holder(conn, entry.project, entry.environment)
                if current.revision == expected.revision:
                    raise  # not the environment row: a bug, keep the traceback
                raise self._conflict(entry, expected, current) from None

    def holder(self, project: str, environment: str) -> Holder:
        """The version holding (project, environment) now, and its revision."""
        with self._errors(), self._read() as conn:
            return self._holder(conn, project, environment)

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

    def verify(self) -> Verification:
        """Re-compute the hash chain and compare it with the head row.

        Detects edited rows (content no longer matches the hash), rows deleted in the middle (a
        gap in ``seq`` or a broken ``prev_hash`` link), and deleted newest rows (the head records
        more entries than the table holds).
        """
        from sqlalchemy import select

        _, ledger, _, head = _schema()
        problems: list[str] = []
        checked = 0
        last_seq, last_hash = 0, GENESIS_HASH
        with self._errors(), self._read() as conn:
            head_row = conn.execute(select(head).where(head.c.id == 1)).one_or_none()
            for row in conn.execute(select(ledger).order_by(ledger.c.seq)):
                checked += 1
                seq = row.seq
                if seq > last_seq + 1:
                    problems.append(
                        f"{_span(last_seq + 1, seq - 1)} missing before entry {seq} (deleted?)"
                    )
                elif row.prev_hash != last_hash:
                    problems.append(
                        f"entry {seq}: prev_hash does not match the hash of entry "
                        f"{last_seq} (chain broken: rewritten or reordered?)"
                    )
                try:
                    recorded = self._recorded(row)
                except (TypeError, ValueError):
                    problems.append(f"entry {seq}: content is not a valid entry (edited?)")
                else:
                    if _content_hash(recorded) != row.hash:
                        problems.append(f"entry {seq}: content does not match its hash (edited?)")
                last_seq, last_hash = seq, row.hash
        if head_row is None:
            if checked:
                problems.append(f"entry {last_seq}: the ledger head row is missing (deleted?)")
        elif head_row.last_seq > last_seq:
            problems.append(
                f"{_span(last_seq + 1, head_row.last_seq)} missing at the end: the "
                f"head records entry {head_row.last_seq} (deleted?)"
            )
        elif head_row.last_seq < last_seq:
            problems.append(
                f"entry {last_seq}: not recorded in the head, which ends at entry "
                f"{head_row.last_seq} (written outside the ledger?)"
            )
        elif head_row.last_hash != last_hash:
            problems.append(f"entry {last_seq}: hash does not match the head's (edited?)")
        return Verification(ok=not problems, checked=checked, problems=problems)

    def close(self) -> None:
        """Release pooled connections; the ledger reconnects on next use."""
        if self._engine_ is not None:
            self._engine_.dispose()
            self._engine_ = None

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"Ledger({self._safe_url()!r})"

    # ----------------------------------------------------------------------------- internals

    def _safe_url(self) -> str:
        try:
            from sqlalchemy.engine import make_url

            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:
            return "<unparseable database URL>"

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Database trouble as :class:`ServiceUnavailableError`, one line naming the URL."""
        from sqlalchemy import exc

        try:
            yield
        except (exc.OperationalError, exc.InterfaceError) as error:
            reason = str(error.orig or error).strip().splitlines()
            first = reason[0].strip() if reason else type(error).__name__
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
            self._setup(engine)
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
                engine = create_engine(url, connect_args={"timeout": 30})

                @event.listens_for(engine, "connect")
                def _no_implicit_transactions(dbapi_connection: Any, record: Any) -> None:
                    dbapi_connection.isolation_level = None

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

    def _setup(self, engine: Engine) -> None:
        """Create the tables, the head row and (PostgreSQL) the append-only trigger, if missing."""
        from sqlalchemy import insert, select, text

        metadata, _, _, head = _schema()
        with self._errors(), engine.begin() as conn:
            postgres = engine.dialect.name == "postgresql"
            if postgres:
                # Several processes may set up a fresh database at once; DDL is transactional.
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY}
                )
            metadata.create_all(conn)
            if conn.execute(select(head.c.id).where(head.c.id == 1)).first() is None:
                conn.execute(insert(head).values(id=1, last_seq=0, last_hash=GENESIS_HASH))
            if postgres:
                installed = conn.execute(
                    text(
                        "SELECT 1 FROM pg_trigger WHERE tgname = :name "
                        "AND tgrelid = 'modelops_ledger'::regclass"
                    ),
                    {"name": _TRIGGER},
                ).first()
                if installed is None:
                    conn.execute(text(_PG_TRIGGER_FUNCTION))
                    conn.execute(text(_PG_TRIGGER))

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._engine().begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine().connect() as conn:
            conn.execution_options(**{_READ_ONLY: True})
            with conn.begin():
                yield conn

    def _lock_head(self, conn: Connection) -> tuple[int, str, datetime]:
        """Lock the head row; return the last seq, its hash, and the ``at`` for the next entry."""
        from sqlalchemy import select

        _, ledger, _, head = _schema()
        last_seq, last_hash = conn.execute(
            select(head.c.last_seq, head.c.last_hash).where(head.c.id == 1).with_for_update()
        ).one()
        now = datetime.now(UTC)
        if last_seq:
            last_at = conn.execute(select(ledger.c.at).where(ledger.c.seq == last_seq)).scalar()
            if last_at is not None:
                # Strictly increasing in seq order, whatever the clocks of the writers say.
                now = max(now, _as_utc(last_at) + timedelta(microseconds=1))
        return last_seq, last_hash, now

    def _append(
        self,
        conn: Connection,
        entry: LedgerEntry,
        locked: tuple[int, str, datetime] | None = None,
    ) -> RecordedEntry:
        from sqlalchemy import insert, update

        _, ledger, _, head = _schema()
        last_seq, last_hash, at = locked or self._lock_head(conn)
        unsigned = RecordedEntry(
            action=entry.action,
            project=entry.project,
            environment=entry.environment,
            actor=entry.actor,
            reason=entry.reason,
            from_version=entry.from_version,
            to_version=entry.to_version,
            verdict_id=entry.verdict_id,
            details=dict(entry.details),
            seq=last_seq + 1,
            at=at,
            prev_hash=last_hash,
            hash="",
        )
        recorded = replace(unsigned, hash=_content_hash(unsigned))
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
                details=_canonical(recorded.details),
                prev_hash=recorded.prev_hash,
                hash=recorded.hash,
            )
        )
        conn.execute(
            update(head)
            .where(head.c.id == 1)
            .values(
                last_seq=recorded.seq,
                last_hash=recorded.hash,
            )
        )
        return recorded

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
    def _conflict(entry: LedgerEntry, expected: Holder, current: Holder) -> ConcurrentChangeError:
        return ConcurrentChangeError(
            f"{entry.project}/{entry.environment} changed: {_shown(expected.version)} is now "
            f"held by {_shown(current.version)} (revision {current.revision}); validate against "
            "the new holder and retry"
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


class _Conflict(Exception):
    """The compare-and-swap UPDATE matched no row."""


def _span(first: int, last: int) -> str:
    return f"entry {first}" if first == last else f"entries {first}-{last}"
