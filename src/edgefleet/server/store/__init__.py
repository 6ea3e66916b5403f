"""Persistence: SQLAlchemy models, the engine (SQLite or PostgreSQL) and Alembic migrations."""

from edgefleet.server.store.database import Database, sqlite_url
from edgefleet.server.store.migrate import check_schema, current_revision, head_revision, upgrade

__all__ = ["Database", "check_schema", "current_revision", "head_revision", "sqlite_url", "upgrade"]
