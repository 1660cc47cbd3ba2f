"""The ledger's tables as the queries see them, and stored rows as records.

Three tables: ``modelops_ledger`` (one row per entry, the hash chain of
:mod:`modelops.core.ledger`), ``modelops_ledger_head`` (one row: the last ``seq`` and hash and,
for a keyed chain, from which ``seq`` it is keyed) and ``modelops_environment`` (the version
serving each (project, environment) and a revision counter). The migrations own the DDL
(:mod:`.migrate`).

SQLAlchemy is imported lazily so that importing this module stays cheap.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modelops.core.ledger import ChainRow, LedgerIntegrityError, RecordedEntry, format_time

if TYPE_CHECKING:
    from sqlalchemy import MetaData, Table
    from sqlalchemy.engine import Connection, Row


def as_utc(value: datetime) -> datetime:
    """A stored ``at`` as an aware UTC datetime."""
    # SQLite hands back naive datetimes; the ledger only ever writes UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def at_text(value: Any) -> str:
    """A stored ``at`` as the hashed text, without building a datetime when SQLite gives text."""
    if isinstance(value, str):
        # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC, see as_utc)
        if len(value) == 26 and value[10] == " " and value[19] == ".":
            return f"{value[:10]}T{value[11:]}Z"
        return format_time(as_utc(datetime.fromisoformat(value)))
    return format_time(as_utc(value))


_TABLES: dict[str, Table] = {}


def tables() -> tuple[MetaData, Table, Table, Table]:
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


def recorded(row: Row[Any]) -> RecordedEntry:
    """A ``modelops_ledger`` row as the entry it records.

    Raises:
        LedgerIntegrityError: the row is not a valid entry.
    """
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
            at=as_utc(row.at),
            prev_hash=row.prev_hash,
            hash=row.hash,
        )
    except (TypeError, ValueError) as error:
        raise LedgerIntegrityError(
            f"ledger entry {row.seq} is not a valid entry (edited?): {error}"
        ) from error


def chain_columns() -> list[Any]:
    """The ``modelops_ledger`` columns the verifier reads, in :class:`ChainRow` order (``at``
    as the stored text on SQLite: :func:`chain_row` parses it)."""
    from sqlalchemy import String, type_coerce

    _, ledger, _, _ = tables()
    return [
        ledger.c.seq,
        type_coerce(ledger.c.at, String),
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


def chain_row(values: Sequence[Any]) -> ChainRow:
    """A row of :func:`chain_columns` as the verifier reads it."""
    return ChainRow(values[0], at_text(values[1]), *values[2:])


# Both halves of the PostgreSQL fingerprint in one statement (one round trip per command).
_PG_FINGERPRINT = """
SELECT (
  SELECT coalesce(
    string_agg(t.tgname::text || ':' || t.tgenabled::text, ',' ORDER BY t.tgname), '')
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
  WHERE c.relname IN ('modelops_ledger', 'modelops_ledger_head', 'modelops_environment')
    AND NOT t.tgisinternal AND c.relnamespace = to_regnamespace(current_schema())
), (
  SELECT coalesce(max(n_tup_upd), 0) || '/' || coalesce(max(n_tup_del), 0)
  FROM pg_stat_user_tables WHERE relid = to_regclass('modelops_ledger')
)
"""


def storage_fingerprint(conn: Connection) -> str:
    """What moves when rows are edited or deleted behind the guards, read cheaply.

    SQLite: the schema cookie (``PRAGMA schema_version``), which every DROP or CREATE TRIGGER
    moves (the guards reject UPDATE and DELETE of entries until dropped), so an edit shows even
    when they are put back. PostgreSQL: the guard triggers and whether each is enabled, and the
    cumulative updated and deleted row counts of the append-only ledger table (a superuser's
    ``session_replication_role`` skips the triggers but not the statistics; they are flushed
    within about a second and can be reset, which costs one full replay).
    """
    from sqlalchemy import text

    if conn.dialect.name == "sqlite":
        return f"sqlite:{conn.exec_driver_sql('PRAGMA schema_version').scalar()}"
    if conn.dialect.name == "postgresql":
        guards, changes = conn.execute(text(_PG_FINGERPRINT)).one()
        return f"postgresql:{guards};{changes}"
    return conn.dialect.name
