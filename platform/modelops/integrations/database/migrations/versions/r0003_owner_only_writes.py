"""Only the tables' owner writes them: the writer pass can no longer be claimed by anyone.

Before, a transaction that ran ``SET LOCAL modelops.writer = 'ledger'`` passed the guards of
``modelops_ledger_head`` and ``modelops_environment`` whoever ran it, and anyone granted INSERT
could append to ``modelops_ledger``. On PostgreSQL the guards now also require the current role
to be the table's owner (or a member of the owning role: the role that ran the migrations, which
the platform connects as); a plain DML role is refused even after setting the variable, and
appending to ``modelops_ledger`` is guarded the same way. The owner can still drop the triggers
(as a superuser can); verification detects what they do.

SQLite has no roles: nothing changes there (the guards stop everyone without the writer
function; anyone holding the file can drop them).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_PG_OWNER_GUARD_FUNCTION = """
CREATE OR REPLACE FUNCTION modelops_ledger_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE')
            AND current_setting('modelops.writer', true) IS NOT DISTINCT FROM 'ledger'
            AND pg_has_role(
                current_user, (SELECT relowner FROM pg_catalog.pg_class WHERE oid = TG_RELID),
                'USAGE') THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION '% on % rejected: only the modelops ledger, as the table owner, writes it',
        TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""

_PG_WRITER_FUNCTION_BEFORE = """
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


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_PG_OWNER_GUARD_FUNCTION)
    op.execute("DROP TRIGGER IF EXISTS modelops_ledger_insert_guard ON modelops_ledger")
    op.execute(
        "CREATE TRIGGER modelops_ledger_insert_guard BEFORE INSERT ON modelops_ledger "
        "FOR EACH STATEMENT EXECUTE FUNCTION modelops_ledger_guard()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS modelops_ledger_insert_guard ON modelops_ledger")
    op.execute(_PG_WRITER_FUNCTION_BEFORE)
