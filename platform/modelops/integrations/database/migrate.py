"""The ledger schema's Alembic migrations: run to head on first use, adopting older databases.

Migrations live in ``migrations/`` (version table ``modelops_alembic_version``, so the database
may be shared with MLflow's own Alembic). The first use of a database upgrades it to head,
serialised by an advisory lock on PostgreSQL and by ``BEGIN IMMEDIATE`` on SQLite; a database
created before the migrations existed (tables but no version table) is stamped at the first
revision and upgraded, keeping its rows.

The migrations also install the guards (they stop accidents and casual edits, not a database
superuser or anyone with the SQLite file, who can drop them; verification detects the rest):

- ``modelops_ledger`` rejects ``UPDATE``, ``DELETE`` and ``TRUNCATE`` (appends stay allowed,
  on PostgreSQL only to the ledger as the tables' owner);
- ``modelops_ledger_head`` and ``modelops_environment`` reject ``DELETE`` and ``TRUNCATE``, and
  ``INSERT``/``UPDATE`` unless made through the ledger (see :mod:`.engine`); on PostgreSQL a
  role that does not own the tables is refused even when it claims the writer pass.

Alembic is imported lazily so that importing this module stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from modelops.core.errors import ConfigError
from modelops.integrations.database.engine import READ_ONLY

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from modelops.integrations.database.engine import Database

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "modelops_alembic_version"
REVISIONS = ("0001", "0002", "0003")
"""Every migration this code knows, oldest first."""
HEAD_REVISION = REVISIONS[-1]
BASELINE_REVISION = REVISIONS[0]
"""The schema of databases created before the migrations: stamped when adopted."""

_ADVISORY_LOCK_KEY = 0x6D6F64656C6F7073  # "modelops": serialises schema setup on PostgreSQL
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


def setup(db: Database, engine: Engine) -> None:
    """Migrate the schema to head unless it is there already (one cheap query then)."""
    with db.errors():
        with engine.connect() as conn:
            conn.execution_options(**{READ_ONLY: True})
            with conn.begin():
                current = schema_revision(conn)
        if current == HEAD_REVISION:
            return
        _check_known(db, current)
        with engine.begin() as conn:
            db.session(conn, writer=True)
            if engine.dialect.name == "postgresql":
                # Several processes may set up a fresh database at once; DDL is transactional.
                from sqlalchemy import text

                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY}
                )
            _migrate(db, conn)


def schema_revision(conn: Connection) -> str | None:
    """The Alembic revision of the ledger schema, None before the migrations ran."""
    from sqlalchemy import inspect, text

    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def _check_known(db: Database, revision: str | None) -> None:
    if revision is not None and revision not in REVISIONS:
        raise ConfigError(
            f"platform database {db.safe_url()} has schema revision {revision}, which "
            f"this modelops does not know (its newest is {HEAD_REVISION}): upgrade modelops"
        )


def _migrate(db: Database, conn: Connection) -> None:
    """Under the setup lock: adopt a pre-migration database, then upgrade to head."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect

    inspector = inspect(conn)
    current = schema_revision(conn)
    _check_known(db, current)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = conn
    config.attributes["version_table"] = VERSION_TABLE
    if current is None and inspector.has_table("modelops_ledger"):
        for table, needed in _LEGACY_COLUMNS.items():
            have = {c["name"] for c in inspector.get_columns(table)}
            if not inspector.has_table(table) or not needed <= have:
                raise ConfigError(
                    f"platform database {db.safe_url()} has modelops tables of an unknown "
                    f"schema ({table} lacks {', '.join(sorted(needed - have))}); not adopting"
                )
        command.stamp(config, BASELINE_REVISION)
    command.upgrade(config, HEAD_REVISION)
