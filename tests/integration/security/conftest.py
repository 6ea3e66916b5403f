"""A server (SQLite, in a thread on a free port) with two projects and a token of every role in each,
plus the shared writer of security results for docs/reliability.md."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgefleet.server import ServerSettings, open_server
from edgefleet.server.api import create_app
from edgefleet.server.auth import sign_request
from edgefleet.server.service import migrate
from tests.integration.server.conftest import FakeClock, make_bundle, serve_in_thread

PROJECTS = ("default", "other")
ROLES = ("viewer", "operator", "admin")


@dataclass
class Device:
    id: str
    key: Ed25519PrivateKey

    def signed(
        self, method: str, target: str, body: bytes = b"", *, as_device: str | None = None
    ) -> dict[str, str]:
        return sign_request(self.key, as_device or self.id, method, target, body)


@dataclass
class SecServer:
    url: str
    client: httpx.Client
    admin: str  # server-wide administrator (the first start's token)
    clock: FakeClock
    settings: ServerSettings
    app: Any
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)  # (project, role) -> token

    def call(self, method: str, path: str, token: str | None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.request(method, path, headers=headers | kw.pop("headers", {}), **kw)

    def join(self, project: str) -> str:
        r = self.call(
            "POST",
            f"/api/v1/projects/{project}/join-tokens",
            self.admin,
            json={"name": "t", "max_uses": None},
        )
        assert r.status_code == 201, r.text
        return str(r.json()["token"])

    def enroll(self, project: str) -> Device:
        key = Ed25519PrivateKey.generate()
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        r = self.client.post(
            "/device/v1/enroll",
            json={"join_token": self.join(project), "public_key": base64.b64encode(raw).decode()},
        )
        assert r.status_code == 201, r.text
        return Device(r.json()["device_id"], key)

    def upload(self, project: str, name: str, version: str) -> dict[str, Any]:
        r = self.call(
            "POST",
            f"/api/v1/projects/{project}/bundles",
            self.admin,
            files={"file": ("b.tar.gz", make_bundle(name, version, f"{project} {name}".encode()))},
        )
        assert r.status_code == 201, r.text
        return dict(r.json())


def make_server(tmp_path: Path, **settings: Any) -> Iterator[SecServer]:
    s = ServerSettings(data_dir=tmp_path / "server", rollout_tick_seconds=0.2, **settings)
    migrate(s)
    clock = FakeClock()
    ctx, admin = open_server(s, clock=clock)
    assert admin is not None
    app = create_app(ctx, background=False)
    try:
        with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
            srv = SecServer(url=url, client=client, admin=admin, clock=clock, settings=s, app=app)
            r = srv.call("POST", "/api/v1/projects", admin, json={"id": "other"})
            assert r.status_code == 201, r.text
            for project in PROJECTS:
                for role in ROLES:
                    r = srv.call(
                        "POST",
                        f"/api/v1/projects/{project}/tokens",
                        admin,
                        json={"name": f"{role}-{project}", "role": role},
                    )
                    assert r.status_code == 201, r.text
                    srv.tokens[(project, role)] = r.json()["token"]
            yield srv
    finally:
        ctx.db.dispose()


@pytest.fixture
def sec_server(tmp_path: Path) -> Iterator[SecServer]:
    yield from make_server(tmp_path, auth_failure_limit=0)


def full() -> bool:
    """EDGEFLEET_SECURITY_FULL=1: the full counts (more fuzz examples, more guesses)."""
    return os.environ.get("EDGEFLEET_SECURITY_FULL") == "1"


def record(name: str, *, trials: int, outcomes: dict[str, int], notes: str, data_lost: int = 0) -> None:
    """Write ``security-<name>.json`` into $EDGEFLEET_FAULT_RESULTS (the reliability report's input)."""
    out = os.environ.get("EDGEFLEET_FAULT_RESULTS")
    if not out:
        return
    Path(out).mkdir(parents=True, exist_ok=True)
    doc = {
        "name": name,
        "kind": "attack",
        "trials": trials,
        "outcomes": outcomes,
        "data_lost": data_lost,
        "notes": notes,
    }
    (Path(out) / f"security-{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
