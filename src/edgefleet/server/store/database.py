"""The database handle: one engine and session factory, SQLite (WAL) or PostgreSQL (psycopg 3).

SQLite is tuned for a single server process with many readers: WAL journal, a busy timeout,
``synchronous=NORMAL`` and foreign keys on. PostgreSQL URLs (``postgresql://...``) are driven by
psycopg 3; ``schema`` puts every table in that PostgreSQL schema (tests use one per run).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.server.errors import ServerInputError

__all__ = ["Database", "sqlite_url"]

SQLITE_BUSY_TIMEOUT_MS = 10_000


def sqlite_url(data_dir: Path) -> str:
    """The default database: ``<data_dir>/server.db``."""
    return f"sqlite:///{data_dir / 'server.db'}"


def _normalise(url: str) -> str:
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Database:
    """Engine, sessions and dialect facts for one database."""

    def __init__(self, url: str, *, schema: str | None = None, pool_size: int = 10) -> None:
        try:
            parsed = make_url(_normalise(url))
        except ArgumentError as exc:
            raise ServerInputError(f"--db: not a database URL: {url!r}", field="db") from exc
        self.url = parsed
        self.schema = schema
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if not self.is_sqlite and parsed.get_backend_name() != "postgresql":
            raise ServerInputError(
                f"--db: unsupported database {parsed.get_backend_name()!r}; use sqlite:/// or postgresql://",
                field="db",
            )
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
            if schema:
                kwargs["connect_args"] = {"options": f"-csearch_path={schema}"}
        self.engine: Engine = create_engine(parsed, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = threading.Lock()

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on any exception.

        ``write=True`` on SQLite takes the write lock at the start (``BEGIN IMMEDIATE``), so a
        transaction that reads then writes waits for the busy timeout instead of failing on upgrade.
        """
        if write and self.is_sqlite:
            # One writer at a time inside this process: SQLite's own busy handler backs off with sleeps
            # of up to 100 ms, a lock hands over at once.
            with self._write_lock, self.sessions() as s, s.begin():
                s.connection(execution_options={"sqlite_immediate": True})
                yield s
            return
        with self.sessions() as s, s.begin():
            yield s

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    # pysqlite opens transactions lazily and late; take them explicitly in _sqlite_begin instead.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect on a new database only
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql(
        "BEGIN IMMEDIATE" if conn.get_execution_options().get("sqlite_immediate") else "BEGIN"
    )
