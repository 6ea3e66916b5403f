"""The server's own ed25519 key (the Director role) and the seam where TUF metadata plugs in.

The server signs every per-device desired-state document with its key, the way Uptane's director
signs per-vehicle targets: the device checks the signature with the public key it received at
enrollment, so a compromised mirror or proxy cannot change what a device runs.

Bundle trust (TUF targets/snapshot/timestamp) is a separate concern behind :class:`TrustStore`.
The default :class:`ManifestTrustStore` records the sha256 and size of each uploaded bundle and the
``targets`` metadata uploaded with it, unverified; a TUF repository (``edgefleet.bundle``'s
``Repository``) implements the same protocol to verify uploads against the offline targets key,
re-sign snapshot and timestamp with the online keys, and hand the root to enrolling devices.

Signed document envelope (canonical JSON: sorted keys, no spaces, UTF-8)::

    {"signed": {...}, "signatures": [{"keyid": "<sha256 of raw public key>", "sig": "<base64>"}]}
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgefleet.errors import VerificationError
from edgefleet.server.errors import ServerInputError

__all__ = [
    "ManifestTrustStore",
    "ServerKey",
    "TrustStore",
    "canonical_json",
    "key_id",
    "load_public_key",
    "verify_document",
]


def canonical_json(data: Any) -> bytes:
    """The bytes that are signed: sorted keys, no whitespace, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()


def load_public_key(raw_b64: str, field: str = "public_key") -> Ed25519PublicKey:
    """An ed25519 public key from base64 of its 32 raw bytes; a clear error naming ``field`` otherwise."""
    try:
        raw = base64.b64decode(raw_b64, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise ServerInputError(
            f"{field}: expected base64 of a 32-byte raw ed25519 public key",
            code="server.invalid_public_key",
            field=field,
        ) from exc


class ServerKey:
    """The server's signing key, kept as PEM (mode 0600) in the data directory."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public_raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.keyid = key_id(self.public_raw)

    @classmethod
    def load_or_create(cls, path: Path) -> ServerKey:
        if path.exists():
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(loaded, Ed25519PrivateKey):
                raise ServerInputError(f"{path}: not an ed25519 private key", field="server_key")
            return cls(loaded)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        return cls(key)

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public_raw).decode()

    def sign_document(self, signed: dict[str, Any]) -> dict[str, Any]:
        sig = self._private.sign(canonical_json(signed))
        return {
            "signed": signed,
            "signatures": [{"keyid": self.keyid, "sig": base64.b64encode(sig).decode()}],
        }


def verify_document(envelope: dict[str, Any], public_raw: bytes) -> dict[str, Any]:
    """The ``signed`` part of an envelope when one signature by ``public_raw`` is valid."""
    public = Ed25519PublicKey.from_public_bytes(public_raw)
    kid = key_id(public_raw)
    for s in envelope.get("signatures", []):
        if s.get("keyid") != kid:
            continue
        try:
            public.verify(base64.b64decode(s["sig"]), canonical_json(envelope["signed"]))
        except (InvalidSignature, ValueError, KeyError):
            continue
        signed: dict[str, Any] = envelope["signed"]
        return signed
    raise VerificationError("no valid signature by the server key", code="server.bad_document_signature")


class TrustStore(Protocol):
    """Where bundle trust plugs in: check an upload, and give devices the trust material.

    ``admit`` is called inside the upload request with the bundle's manifest, the blob's sha256 and
    size, and the ``targets`` metadata the client sent (``None`` when it sent none); it raises a
    :class:`~edgefleet.errors.VerificationError` to refuse the upload and returns the metadata to
    store with the bundle. ``trust_material`` goes to every enrolling device.
    """

    def admit(
        self, project: str, manifest: dict[str, Any], sha256: str, size: int, targets: dict[str, Any] | None
    ) -> dict[str, Any] | None: ...

    def trust_material(self, project: str) -> dict[str, Any]: ...


class ManifestTrustStore:
    """Trust by content address only: the blob's sha256 (and the signed desired state) protect it.

    Uploaded ``targets`` metadata is kept as given and served to devices with the bundle; it is not
    verified here.
    """

    def admit(
        self, project: str, manifest: dict[str, Any], sha256: str, size: int, targets: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        del project, manifest, sha256, size
        return targets

    def trust_material(self, project: str) -> dict[str, Any]:
        del project
        return {"kind": "sha256", "tuf_root": None}
