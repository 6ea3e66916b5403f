"""Alembic, driven from code: ``edgefleet server migrate`` upgrades, ``server run`` checks.

The migration scripts live in ``edgefleet/server/migrations`` inside the package, so an installed
wheel can migrate its own database without an ``alembic.ini``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from edgefleet.server.errors import SchemaError
from edgefleet.server.store.database import Database

__all__ = ["check_schema", "current_revision", "head_revision", "upgrade"]

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def _config(db: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["database"] = db
    return cfg


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    if head is None:  # the package always ships at least one migration
        raise SchemaError("no migrations found in the edgefleet package", field="migrations")
    return head


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        opts = {"version_table_schema": db.schema} if db.schema else {}
        return MigrationContext.configure(conn, opts=opts).get_current_revision()


def upgrade(db: Database, revision: str = "head") -> str | None:
    """Apply every migration up to ``revision``; returns the revision the database is now at."""
    command.upgrade(_config(db), revision)
    return current_revision(db)


def check_schema(db: Database) -> str:
    """Refuse to serve a database that is not exactly at this version's head revision."""
    current = current_revision(db)
    head = head_revision()
    if current == head:
        return head
    if current is None:
        raise SchemaError(
            "the database has no edgefleet schema yet: run 'edgefleet server migrate' first",
            code="server.schema_not_migrated",
            expected=head,
        )
    known = {s.revision for s in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}
    if current not in known:
        raise SchemaError(
            f"the database schema {current} is newer than this edgefleet (expects {head}): upgrade edgefleet",
            code="server.schema_too_new",
            current=current,
            expected=head,
        )
    raise SchemaError(
        f"the database schema {current} is older than this edgefleet (expects {head}): "
        "run 'edgefleet server migrate'",
        code="server.schema_not_migrated",
        current=current,
        expected=head,
    )
