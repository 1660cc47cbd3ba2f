"""HMAC-keyed chains and guards on the head and holder tables.

- ``modelops_ledger_head`` gains ``hmac_from`` (first HMAC-keyed seq, NULL: plain SHA-256) and
  ``hmac_marker`` (HMAC of that seq under the key, to tell a wrong key from an edit).
- ``modelops_ledger_head`` and ``modelops_environment`` reject DELETE and TRUNCATE, and INSERT or
  UPDATE unless made through the ledger: on PostgreSQL a transaction that ran
  ``SET LOCAL modelops.writer = 'ledger'``; on SQLite a connection that registered the SQL
  function ``modelops_ledger_writer()``. This stops accidents and casual edits, not a superuser
  (who can set the variable or drop the trigger) nor anyone holding the SQLite file.
- The ledger table's append-only guard is (re)installed on PostgreSQL, so an adopted database
  has it whatever it had, and installed on SQLite (UPDATE and DELETE; SQLite has no TRUNCATE).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_GUARDED = ("modelops_ledger_head", "modelops_environment")

_PG_APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION modelops_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'modelops_ledger is append-only: % rejected', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""

_PG_GUARD_FUNCTION = """
CREATE OR REPLACE FUNCTION modelops_ledger_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE')
            AND current_setting('modelops.writer', true) IS NOT DISTINCT FROM 'ledger' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION '% on % rejected: only the modelops ledger writes it', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def _sqlite_triggers() -> list[tuple[str, str]]:
    triggers = [
        (
            f"modelops_ledger_no_{op_name.lower()}",
            f"CREATE TRIGGER modelops_ledger_no_{op_name.lower()} BEFORE {op_name} ON "
            "modelops_ledger BEGIN SELECT RAISE(ABORT, "
            f"'modelops_ledger is append-only: {op_name} rejected'); END",
        )
        for op_name in ("UPDATE", "DELETE")
    ]
    for table in _GUARDED:
        triggers.append(
            (
                f"{table}_no_delete",
                f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} BEGIN "
                f"SELECT RAISE(ABORT, 'DELETE on {table} rejected: only the modelops ledger "
                "writes it'); END",
            )
        )
        for op_name in ("INSERT", "UPDATE"):
            name = f"{table}_guard_{op_name.lower()}"
            triggers.append(
                (
                    name,
                    f"CREATE TRIGGER {name} BEFORE {op_name} ON {table} "
                    "WHEN modelops_ledger_writer() IS NOT 1 BEGIN SELECT RAISE(ABORT, "
                    f"'{op_name} on {table} rejected: only the modelops ledger writes it'); END",
                )
            )
    return triggers


def upgrade() -> None:
    op.add_column("modelops_ledger_head", sa.Column("hmac_from", sa.BigInteger, nullable=True))
    op.add_column("modelops_ledger_head", sa.Column("hmac_marker", sa.String(64), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_APPEND_ONLY_FUNCTION)
        op.execute("DROP TRIGGER IF EXISTS modelops_ledger_append_only ON modelops_ledger")
        op.execute(
            "CREATE TRIGGER modelops_ledger_append_only "
            "BEFORE UPDATE OR DELETE OR TRUNCATE ON modelops_ledger "
            "FOR EACH STATEMENT EXECUTE FUNCTION modelops_ledger_append_only()"
        )
        op.execute(_PG_GUARD_FUNCTION)
        for table in _GUARDED:
            op.execute(
                f"CREATE TRIGGER {table}_guard "
                f"BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION modelops_ledger_guard()"
            )
    else:
        for _, create in _sqlite_triggers():
            op.execute(create)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _GUARDED:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_guard ON {table}")
        op.execute("DROP FUNCTION IF EXISTS modelops_ledger_guard()")
    else:
        for name, _ in _sqlite_triggers():
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    with op.batch_alter_table("modelops_ledger_head") as batch:
        batch.drop_column("hmac_marker")
        batch.drop_column("hmac_from")
