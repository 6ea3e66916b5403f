"""Opening a server: database (checked against the migrations), key, blobs, first-start bootstrap."""

from __future__ import annotations

import os
import time

from edgefleet.server.blobs import FileBlobStore
from edgefleet.server.context import Clock, ServerContext, ServerSettings
from edgefleet.server.keys import ManifestTrustStore, ServerKey, TrustStore
from edgefleet.server.store import Database, check_schema, sqlite_url, upgrade
from edgefleet.server.tenancy import bootstrap

__all__ = ["database_for", "migrate", "open_server"]


def database_for(settings: ServerSettings) -> Database:
    return Database(settings.db_url or sqlite_url(settings.data_dir), schema=settings.db_schema)


def migrate(settings: ServerSettings) -> str | None:
    """Apply every pending migration; returns the revision the database is at."""
    db = database_for(settings)
    try:
        return upgrade(db)
    finally:
        db.dispose()


def open_server(
    settings: ServerSettings, *, trust: TrustStore | None = None, clock: Clock = time.time
) -> tuple[ServerContext, str | None]:
    """A ready :class:`ServerContext`, and the admin token when this was the first start (else None).

    Refuses (``server.schema_not_migrated`` / ``server.schema_too_new``) unless the database is at
    exactly this version's migration head.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if trust is None and settings.tuf_keys_dir is not None:
        from edgefleet.server.tuf import TufTrustStore

        env = settings.tuf_passphrase_env
        secret = os.environ.get(env) if env else None
        trust = TufTrustStore(
            settings.data_dir, settings.tuf_keys_dir, passphrase=secret.encode() if secret else None
        )
    db = database_for(settings)
    try:
        check_schema(db)
    except BaseException:
        db.dispose()
        raise
    key = ServerKey.load_or_create(settings.data_dir / "server-key.pem")
    ctx = ServerContext(
        settings=settings,
        db=db,
        key=key,
        blobs=FileBlobStore(settings.data_dir / "blobs"),
        trust=trust or ManifestTrustStore(),
        clock=clock,
    )
    with db.session(write=True) as s:
        token = bootstrap(s, ctx.now())
    return ctx, token
