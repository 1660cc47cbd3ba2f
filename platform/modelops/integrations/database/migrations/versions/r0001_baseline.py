"""Baseline: the ledger, its head and the environment holders, as created before migrations.

A database created by earlier modelops code (these tables, no version table) is stamped at this
revision instead of running it. On PostgreSQL the ledger table rejects UPDATE, DELETE and
TRUNCATE.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

GENESIS_HASH = "0" * 64

_PG_APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION modelops_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'modelops_ledger is append-only: % rejected', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""

_PG_APPEND_ONLY_TRIGGER = """
CREATE TRIGGER modelops_ledger_append_only
BEFORE UPDATE OR DELETE OR TRUNCATE ON modelops_ledger
FOR EACH STATEMENT EXECUTE FUNCTION modelops_ledger_append_only()
"""


def upgrade() -> None:
    op.create_table(
        "modelops_ledger",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("actor", sa.String(500), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("from_version", sa.String(200)),
        sa.Column("to_version", sa.String(200)),
        sa.Column("verdict_id", sa.String(200)),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index(
        "ix_modelops_ledger_project_environment",
        "modelops_ledger",
        ["project", "environment", "seq"],
    )
    op.create_table(
        "modelops_environment",
        sa.Column("project", sa.String(200), primary_key=True),
        sa.Column("environment", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(200)),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    head = op.create_table(
        "modelops_ledger_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "last_seq": 0, "last_hash": GENESIS_HASH}])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_APPEND_ONLY_FUNCTION)
        op.execute(_PG_APPEND_ONLY_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS modelops_ledger_append_only ON modelops_ledger")
        op.execute("DROP FUNCTION IF EXISTS modelops_ledger_append_only()")
    op.drop_table("modelops_ledger_head")
    op.drop_table("modelops_environment")
    op.drop_index("ix_modelops_ledger_project_environment", table_name="modelops_ledger")
    op.drop_table("modelops_ledger")
