"""Verify a downloaded bundle and unpack it into the store, in a child process of the agent.

    python -m edgefleet.agent.verify STATE_DIR TAR SHA256 NAME VERSION
    python -m edgefleet.agent.verify --installed BUNDLES_DIR SHA256

The agent runs this as a child so that the bundle and TUF libraries (pydantic, python-tuf,
securesystemslib, urllib3) never load into the long-running process. It prints one JSON line:
``{"sha256": ..., "tuf": {...} | null}`` or ``{"error": {"code", "message", "retry", "errno"}}``.
A write that fails (a full disk: ``errno`` 28) is ``bundle.write_failed`` with the ``errno``: the
agent waits for space rather than refusing the bundle.

``--installed`` re-hashes a bundle already in the store against its ``bundle.json`` (before the
agent starts it again): ``{"ok": true}`` or ``{"error": {"code", "message"}}`` when it was damaged.

When the device enrolled with a server that hosts a TUF repository (``trust.kind == "tuf"`` in
``identity.json``), the TUF client (:class:`edgefleet.bundle.client.BundleClient`) first refreshes
the metadata over the device API with signed requests, starting from the root received at enrollment
and persisted under ``STATE_DIR/tuf/metadata`` (root chain, signatures and thresholds, expiry, no
rollback of versions, no mix-and-match), then checks that the signed targets list ``NAME-VERSION.tar``
with exactly the length and sha256 of the downloaded tar and of the desired state. Only then is the
tar unpacked (every file against ``bundle.json``, safe members, atomic rename into the store).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import sys
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tuf.api import exceptions as tuf_errors
from tuf.ngclient import FetcherInterface

from edgefleet.agent.protocol import load_key_pem, sign_request
from edgefleet.errors import EdgefleetError, UnavailableError, VerificationError

__all__ = ["SignedFetcher", "check_installed", "main", "verify_and_install"]


class SignedFetcher(FetcherInterface):
    """``tuf.ngclient`` fetches over the device API: every request signed with the device key."""

    def __init__(
        self,
        key: Ed25519PrivateKey,
        device: str,
        *,
        timeout: float = 30.0,
        context: ssl.SSLContext | None = None,
    ) -> None:
        """``context``: how an https server is verified (the CA the agent pinned); None: system CAs."""
        self._key = key
        self._device = device
        self._timeout = timeout
        self._context = context

    def _fetch(self, url: str) -> Iterator[bytes]:
        parts = urllib.parse.urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=self._timeout, context=self._context
            )
        else:
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=self._timeout)
        conn.request("GET", target, headers=sign_request(self._key, self._device, "GET", target))
        r = conn.getresponse()
        if r.status != 200:
            r.read()
            conn.close()
            raise tuf_errors.DownloadHTTPError(f"GET {target}: HTTP {r.status}", r.status)
        return self._chunks(conn, r)

    @staticmethod
    def _chunks(conn: http.client.HTTPConnection, r: http.client.HTTPResponse) -> Iterator[bytes]:
        try:
            while block := r.read(1 << 16):
                yield block
        finally:
            conn.close()


def _failpoint(step: str, failpoint: str | None) -> None:
    """Tests: SIGKILL the agent (our parent) and this process at ``step``."""
    if failpoint == step:
        os.kill(os.getppid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)


def verify_and_install(
    state: Path, tar: Path, sha256: str, name: str, version: str, *, failpoint: str | None = None
) -> dict[str, Any]:
    """Verify ``tar`` (TUF when the identity says so) and install it; the JSON the agent reads."""
    from edgefleet.bundle.store import BundleStore

    identity = json.loads((state / "identity.json").read_bytes())
    trust = identity.get("trust") or {}
    store = BundleStore(state / "bundles")
    tuf_info: dict[str, Any] | None = None
    if trust.get("kind") == "tuf":
        tuf_info = _verify_tuf(
            state,
            identity=identity,
            trust=trust,
            tar=tar,
            sha256=sha256,
            name=name,
            version=version,
            store=store,
        )
    _failpoint("verifying", failpoint)
    installed = store.install(tar, expected_sha256=sha256)
    _failpoint("unpacking", failpoint)
    return {"sha256": installed.sha256, "tuf": tuf_info}


def _pinned_context(state: Path) -> ssl.SSLContext:
    """The TLS context of the agent's own requests: its pinned CA (``server-ca.pem``), else the system's."""
    from edgefleet.agent.tls import context_for

    pinned = state / "server-ca.pem"
    return context_for(pinned.read_bytes() if pinned.is_file() else None)


def _verify_tuf(
    state: Path,
    *,
    identity: dict[str, Any],
    trust: dict[str, Any],
    tar: Path,
    sha256: str,
    name: str,
    version: str,
    store: Any,
) -> dict[str, Any]:
    from edgefleet.bundle.client import BundleClient
    from edgefleet.bundle.errors import BundleError

    loaded = load_key_pem((state / "key.pem").read_bytes())
    if loaded is None:
        raise VerificationError("key.pem: not an ed25519 key", code="agent.bad_key")
    base = str(identity["server"]).rstrip("/") + str(trust.get("tuf_url") or "/device/v1/tuf")
    root = trust.get("tuf_root")
    client = BundleClient(
        state / "tuf",
        base,
        store,
        trusted_root=root.encode() if isinstance(root, str) else None,
        fetcher=SignedFetcher(loaded, str(identity["device_id"]), context=_pinned_context(state)),
    )
    client.refresh()
    info = client.target(name, version)
    signed_sha = info.hashes.get("sha256")
    if signed_sha != sha256:
        raise BundleError(
            f"TUF targets sign {info.path} as sha256 {signed_sha}, the desired state names {sha256}",
            code="bundle.hash_mismatch",
        )
    size = tar.stat().st_size
    if size != info.length:
        raise BundleError(
            f"{info.path}: {size} bytes downloaded, TUF targets sign {info.length}",
            code="bundle.length_mismatch",
        )
    with tar.open("rb") as f:
        try:
            info.verify_length_and_hashes(f)
        except tuf_errors.LengthOrHashMismatchError as exc:
            raise BundleError(f"{info.path}: {exc}", code="bundle.hash_mismatch") from exc
    versions: dict[str, int] = {}
    for role in ("root", "timestamp", "snapshot", "targets"):  # what the client trusts now, persisted
        path = client.metadata_dir / f"{role}.json"
        if path.is_file():
            versions[role] = int(json.loads(path.read_bytes())["signed"]["version"])
    return {"target": info.path, "versions": versions}


def check_installed(bundles: Path, sha256: str) -> dict[str, Any]:
    """Re-hash an installed bundle against its manifest; the JSON the agent reads."""
    from edgefleet.bundle.store import BundleStore

    try:
        BundleStore(bundles).verify(sha256)
    except EdgefleetError as exc:
        return {"error": {"code": exc.code, "message": exc.message}}
    return {"ok": True}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 3 and args[0] == "--installed":
        sys.stdout.write(json.dumps(check_installed(Path(args[1]), args[2])) + "\n")
        return 0
    if len(args) != 5:
        sys.stderr.write(
            "usage: python -m edgefleet.agent.verify STATE_DIR TAR SHA256 NAME VERSION\n"
            "       python -m edgefleet.agent.verify --installed BUNDLES_DIR SHA256\n"
        )
        return 2
    state, tar, sha256, name, version = args
    try:
        fp = os.environ.get("EDGEFLEET_AGENT_FAILPOINT") or None
        out = verify_and_install(Path(state), Path(tar), sha256, name, version, failpoint=fp)
    except EdgefleetError as exc:
        retry = isinstance(exc, UnavailableError)
        cause = getattr(exc.__cause__, "errno", None)
        out = {"error": {"code": exc.code, "message": exc.message, "retry": retry, "errno": cause}}
    except OSError as exc:  # a write of the install (a full disk): the agent waits for space
        out = {
            "error": {"code": "bundle.write_failed", "message": str(exc), "retry": False, "errno": exc.errno}
        }
    except (ValueError, KeyError) as exc:
        out = {"error": {"code": "agent.install_failed", "message": str(exc), "retry": False}}
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
