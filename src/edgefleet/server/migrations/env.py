"""Alembic environment: runs migrations on the :class:`Database` handed over in the config."""

from __future__ import annotations

from alembic import context

from edgefleet.server.store.database import Database
from edgefleet.server.store.models import Base

config = context.config
database = config.attributes.get("database")
if not isinstance(database, Database):  # only reachable when alembic is run by hand without edgefleet
    raise TypeError("run migrations with 'edgefleet server migrate'")

with database.engine.connect() as connection:
    if database.schema:
        connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{database.schema}"')
        connection.commit()
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=database.is_sqlite,
        version_table_schema=database.schema,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
