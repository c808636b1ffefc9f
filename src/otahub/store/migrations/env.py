"""Alembic environment: always handed a live connection by otahub.store.migrate."""

from __future__ import annotations

from alembic import context

from otahub.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through otahub.store.migrate (or `otahub migrate`)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
