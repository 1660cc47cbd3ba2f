"""Alembic environment: migrates the connection the Ledger hands over, inside its transaction.

The Ledger holds the setup lock (an advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite)
on that connection, so migrations from several processes never interleave. There is no offline
(SQL script) mode and no ``alembic.ini``.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "the modelops ledger migrations run through modelops.integrations.database.Ledger, "
        "which passes its connection in config.attributes['connection']"
    )
context.configure(
    connection=connection,
    version_table=context.config.attributes.get("version_table", "modelops_alembic_version"),
    target_metadata=None,
)
with context.begin_transaction():
    context.run_migrations()
