"""The device side of the server's device protocol, without the server's own (database) modules.

Signed requests (docs/server.md, "Signed requests")::

    "edgefleet-device-v1\\n" METHOD "\\n" path[?query] "\\n" hex(sha256(body)) "\\n"
    ts "\\n" nonce "\\n" device

and signed documents (canonical JSON: sorted keys, no whitespace, UTF-8) verified against the
server's ed25519 key received at enrollment. The unit tests check these byte for byte against
:mod:`edgefleet.server.auth` and :mod:`edgefleet.server.keys`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgefleet.agent.errors import AgentVerificationError

__all__ = ["canonical_json", "key_id", "key_pem", "load_key_pem", "sign_request", "verify_document"]

SCHEME: Final = "edgefleet-device-v1"
# PKCS#8 DER of an ed25519 private key is this prefix and the 32-byte seed (RFC 8410): written and
# read here without cryptography's serialization module (which would cost the agent ~3 MB of RSS).
_PKCS8_ED25519: Final = bytes.fromhex("302e020100300506032b657004220420")
_PEM_BEGIN: Final = "-----BEGIN PRIVATE KEY-----"
_PEM_END: Final = "-----END PRIVATE KEY-----"


def key_pem(key: Ed25519PrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM (what ``cryptography`` writes too)."""
    der = base64.b64encode(_PKCS8_ED25519 + key.private_bytes_raw()).decode()
    return f"{_PEM_BEGIN}\n{der}\n{_PEM_END}\n".encode()


def load_key_pem(pem: bytes) -> Ed25519PrivateKey | None:
    """An ed25519 key from unencrypted PKCS#8 PEM; None when ``pem`` is not one."""
    text = pem.decode(errors="replace").strip()
    if not (text.startswith(_PEM_BEGIN) and text.endswith(_PEM_END)):
        return None
    try:
        der = base64.b64decode("".join(text[len(_PEM_BEGIN) : -len(_PEM_END)].split()), validate=True)
    except ValueError:
        return None
    if len(der) != len(_PKCS8_ED25519) + 32 or not der.startswith(_PKCS8_ED25519):
        return None
    return Ed25519PrivateKey.from_private_bytes(der[len(_PKCS8_ED25519) :])


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()


def sign_request(
    key: Ed25519PrivateKey,
    device: str,
    method: str,
    target: str,
    body: bytes = b"",
    *,
    now: float | None = None,
) -> dict[str, str]:
    """The four headers that authenticate one request (``target``: path with its query)."""
    ts = str(int(time.time() if now is None else now))
    nonce = secrets.token_urlsafe(18)
    text = "\n".join((SCHEME, method.upper(), target, hashlib.sha256(body).hexdigest(), ts, nonce, device))
    sig = key.sign(text.encode())
    return {
        "X-Edgefleet-Device": device,
        "X-Edgefleet-Timestamp": ts,
        "X-Edgefleet-Nonce": nonce,
        "X-Edgefleet-Signature": base64.b64encode(sig).decode(),
    }


def verify_document(envelope: Any, public_raw: bytes) -> dict[str, Any]:
    """The ``signed`` part when one signature by ``public_raw`` verifies; else ``agent.bad_signature``."""
    public = Ed25519PublicKey.from_public_bytes(public_raw)
    kid = key_id(public_raw)
    if isinstance(envelope, dict) and isinstance(envelope.get("signed"), dict):
        for s in envelope.get("signatures") or []:
            if not isinstance(s, dict) or s.get("keyid") != kid:
                continue
            try:
                public.verify(base64.b64decode(s["sig"]), canonical_json(envelope["signed"]))
            except (InvalidSignature, ValueError, KeyError, TypeError):
                continue
            signed: dict[str, Any] = envelope["signed"]
            return signed
    raise AgentVerificationError(
        "desired state: no valid signature by the server key", code="agent.bad_signature"
    )
