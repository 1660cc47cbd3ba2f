"""Alembic migrations of the ledger schema, run by :mod:`modelops.integrations.database.migrate`.

Applied on a ledger's first use (``upgrade head``), never imported as modules by the platform.
To add one: ``alembic -x ... revision`` is not wired; copy the newest file in ``versions/``, bump
``revision``/``down_revision`` and append the revision to ``database.REVISIONS``.
"""
