"""A real HTTP server on a free port serving a TUF repository directory, with hooks for attacks."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edgefleet.bundle.build import build_bundle
from edgefleet.bundle.client import BundleClient
from edgefleet.bundle.keys import ONLINE_ROLES, KeyPolicy, KeyStore
from edgefleet.bundle.repository import Repository
from edgefleet.bundle.store import BundleStore
from tests.unit.bundle.bundle_helpers import options, tiny_onnx

# An override answers one request path instead of the file on disk: (handler) -> None.
Override = Callable[[http.server.SimpleHTTPRequestHandler], None]


class _Handler(http.server.SimpleHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        override = self.server.overrides.get(self.path)
        if override is not None:
            override(self)
            return
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        del format, args


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    overrides: dict[str, Override]
    requests: list[str]


@dataclass
class Served:
    """The repository directory, its base URL and the request log and overrides of its server."""

    directory: Path
    url: str
    server: _Server
    sent: dict[str, int] = field(default_factory=dict)

    def override(self, path: str, fn: Override) -> None:
        self.server.overrides[path] = fn

    @property
    def requests(self) -> list[str]:
        return self.server.requests


@pytest.fixture
def serve() -> Iterator[Callable[[Path], Served]]:
    """Start ``ThreadingHTTPServer`` on 127.0.0.1:0 for a directory; shut down after the test."""
    servers: list[_Server] = []

    def start(directory: Path) -> Served:
        server = _Server(("127.0.0.1", 0), functools.partial(_Handler, directory=str(directory)))
        server.overrides = {}
        server.requests = []
        threading.Thread(target=server.serve_forever, name="bundle-test-http", daemon=True).start()
        servers.append(server)
        return Served(directory, f"http://127.0.0.1:{server.server_port}", server)

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


@dataclass
class World:
    """Keys, a repository with relu 1.0.0 signed and refreshed, served over HTTP."""

    tmp: Path
    keys: KeyStore
    repo: Repository
    served: Served

    def release(self, version: str, op: str = "Relu") -> Path:
        model = tiny_onnx(self.tmp / f"model-{version}.onnx", op=op)
        tar = build_bundle(model, self.tmp / f"relu-{version}.tar", options(version=version)).path
        self.repo.add_bundle(tar, self.keys.signers("targets", None))
        self.refresh()
        return tar

    def refresh(self, *, force: bool = False) -> None:
        self.repo.refresh({r: self.keys.signers(r, None) for r in ONLINE_ROLES}, force=force)

    def client(
        self, name: str = "device", *, trusted_root: bytes | None = None, bootstrap: bool = True
    ) -> BundleClient:
        root = (
            trusted_root
            if trusted_root is not None
            else (self.keys.root_versions()[0] if bootstrap else None)
        )
        return BundleClient(
            self.tmp / name / "state",
            self.served.url,
            BundleStore(self.tmp / name / "store"),
            trusted_root=root,
        )

    def metadata(self, name: str) -> Path:
        return self.repo.metadata_dir / name


@pytest.fixture
def world(tmp_path: Path, serve: Callable[[Path], Served]) -> World:
    keys = KeyStore(tmp_path / "keys")
    keys.init(KeyPolicy(), None)
    repo = Repository.create(tmp_path / "repo", keys.root_versions())
    w = World(tmp_path, keys, repo, serve(tmp_path / "repo"))
    w.release("1.0.0")
    return w
