"""Fixtures: a migrated database on SQLite and on PostgreSQL, a server app over it, helpers."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import secrets
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from edgefleet.server import ServerContext, ServerSettings, open_server
from edgefleet.server.api import create_app
from edgefleet.server.service import migrate
from edgefleet.testing.require import require

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


class FakeClock:
    """Server time that tests move forward (bake times, deadlines) without sleeping."""

    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def _pg_available() -> bool:
    import psycopg

    try:
        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", connect_timeout=3):
            return True
    except psycopg.Error:  # any failure to connect means: not available here
        return False


@pytest.fixture(params=["sqlite", "postgresql"])
def db_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerSettings]:
    """Settings for a fresh, migrated database: SQLite in tmp_path, or a unique PostgreSQL schema."""
    if request.param == "sqlite":
        settings = ServerSettings(data_dir=tmp_path / "server", rollout_tick_seconds=0.2)
        migrate(settings)
        yield settings
        return
    require(_pg_available(), f"PostgreSQL at {PG_URL} (trust auth)")
    schema = f"ef_test_{secrets.token_hex(6)}"
    settings = ServerSettings(
        data_dir=tmp_path / "server", db_url=PG_URL, db_schema=schema, rollout_tick_seconds=0.2
    )
    migrate(settings)
    try:
        yield settings
    finally:
        import psycopg

        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@dataclass
class Server:
    ctx: ServerContext
    app: FastAPI
    client: httpx.Client
    admin: str
    clock: FakeClock
    url: str

    @property
    def h(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin}"}

    def api(self, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.admin}"} | kw.pop("headers", {})
        return self.client.request(method, "/api/v1/projects/default" + path, headers=headers, **kw)

    def tick(self, seconds: float = 0.0) -> None:
        """Move the clock, then run one rollout-driver pass."""
        self.clock.advance(seconds)
        self.app.state.driver.tick()

    def join_token(self, **body: Any) -> str:
        r = self.api("POST", "/join-tokens", json={"name": "t", "max_uses": None} | body)
        assert r.status_code == 201, r.text
        return str(r.json()["token"])

    def upload(self, name: str, version: str, payload: bytes | None = None) -> dict[str, Any]:
        r = self.api("POST", "/bundles", files={"file": ("b.tar.gz", make_bundle(name, version, payload))})
        assert r.status_code == 201, r.text
        return dict(r.json())


def make_bundle(name: str, version: str, payload: bytes | None = None, *, manifest: Any = None) -> bytes:
    model = payload if payload is not None else f"model {name} {version}".encode() * 50
    man = manifest or {
        "name": name,
        "version": version,
        "files": [{"path": "model.onnx", "sha256": hashlib.sha256(model).hexdigest(), "size": len(model)}],
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for n, data in (("bundle.json", json.dumps(man).encode()), ("model.onnx", model)):
            info = tarfile.TarInfo(n)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0)  # the same bytes every time (no clock in the header)


@contextmanager
def serve_in_thread(app: FastAPI, *, tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free port in a thread; yields its base URL (https with ``tls``,
    a certificate and key file)."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        access_log=False,
        lifespan="on",
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    port = srv.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=20)


@pytest.fixture
def server(db_settings: ServerSettings) -> Iterator[Server]:
    """A server over a fresh database, answering on a free port; rollouts move only on ``tick()``."""
    clock = FakeClock()
    ctx, admin = open_server(db_settings, clock=clock)
    assert admin is not None
    app = create_app(ctx, background=False)
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield Server(ctx=ctx, app=app, client=client, admin=admin, clock=clock, url=url)
    ctx.db.dispose()
