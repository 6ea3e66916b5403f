"""Who is calling: API tokens with roles for people and tools, signed requests for devices.

**API tokens** (``Authorization: Bearer efk_<id>_<secret>``) are stored as a sha256 of the whole
token; the role orders ``viewer < operator < admin``. A token is scoped to one project, or to none
for server administrators (who may act in every project and create projects).

**Device requests** (after enrollment) carry four headers::

    X-Edgefleet-Device:    <device id>
    X-Edgefleet-Timestamp: <unix seconds, integer>
    X-Edgefleet-Nonce:     <16-64 chars [A-Za-z0-9_-], unique per request>
    X-Edgefleet-Signature: <base64 ed25519 signature by the device key over the string below>

    edgefleet-device-v1 LF <METHOD> LF <path>[?<query>] LF <sha256 hex of the body> LF <timestamp>
    LF <nonce> LF <device id>          (LF = one newline byte, no spaces around it)

The server refuses a timestamp more than :data:`SKEW_SECONDS` away from its clock and a nonce it
has seen inside that window (per server process; see docs/server.md for replicas).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgefleet.server.errors import ForbiddenError, ServerUnauthenticatedError

__all__ = [
    "ROLES",
    "SKEW_SECONDS",
    "Caller",
    "NonceCache",
    "Role",
    "hash_token",
    "new_token",
    "sign_request",
    "signing_string",
    "verify_request",
]

Role = Literal["viewer", "operator", "admin"]
ROLES: Final[tuple[Role, ...]] = ("viewer", "operator", "admin")
SKEW_SECONDS: Final = 300
SCHEME: Final = "edgefleet-device-v1"
H_DEVICE, H_TS, H_NONCE, H_SIG = (
    "X-Edgefleet-Device",
    "X-Edgefleet-Timestamp",
    "X-Edgefleet-Nonce",
    "X-Edgefleet-Signature",
)
_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def new_token(prefix: str) -> tuple[str, str, str]:
    """A fresh secret token: ``(id, token, sha256 hash)``. Only the hash is stored."""
    tid = secrets.token_hex(8)
    token = f"{prefix}_{tid}_{secrets.token_urlsafe(24)}"
    return tid, token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    """An authenticated API token: its project scope (None: every project) and role."""

    token_id: str
    name: str
    role: Role
    project: str | None

    def require(self, role: Role, project: str | None) -> None:
        """Refuse unless this caller has ``role`` (or higher) in ``project`` (None: server-wide)."""
        if ROLES.index(self.role) < ROLES.index(role):
            raise ForbiddenError(
                f"this needs the {role} role; token {self.name!r} has {self.role}",
                needed=role,
                role=self.role,
            )
        if self.project is not None and self.project != project:
            raise ForbiddenError(
                f"token {self.name!r} is scoped to project {self.project!r}",
                project=project,
                token_project=self.project,
            )

    @property
    def actor(self) -> str:
        return f"token:{self.token_id}:{self.name}"


def signing_string(
    method: str, target: str, body: bytes, *, timestamp: str, nonce: str, device: str
) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((SCHEME, method.upper(), target, digest, timestamp, nonce, device)).encode()


def sign_request(
    key: Ed25519PrivateKey,
    device: str,
    method: str,
    target: str,
    body: bytes = b"",
    *,
    now: float | None = None,
) -> dict[str, str]:
    """The headers a device sends with one request (``target`` is the path with its query)."""
    ts = str(int(time.time() if now is None else now))
    nonce = secrets.token_urlsafe(18)
    sig = key.sign(signing_string(method, target, body, timestamp=ts, nonce=nonce, device=device))
    return {H_DEVICE: device, H_TS: ts, H_NONCE: nonce, H_SIG: base64.b64encode(sig).decode()}


class NonceCache:
    """Nonces seen inside the skew window, bounded; thread-safe."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def add(self, key: str, now: float) -> bool:
        """Record ``key``; False when it was already seen inside the window (a replay)."""
        with self._lock:
            while self._seen:
                oldest, at = next(iter(self._seen.items()))
                if at >= now - 2 * SKEW_SECONDS and len(self._seen) < self._capacity:
                    break
                del self._seen[oldest]
            if key in self._seen:
                return False
            self._seen[key] = now
            return True


def verify_request(
    headers: Mapping[str, str],
    method: str,
    target: str,
    body: bytes,
    *,
    public_key_for: Callable[[str], bytes],
    nonces: NonceCache,
    now: float,
) -> str:
    """Check a device's signed request; returns the device id or raises 401."""
    device = headers.get(H_DEVICE)
    ts = headers.get(H_TS)
    nonce = headers.get(H_NONCE)
    sig = headers.get(H_SIG)
    if not (device and ts and nonce and sig):
        raise ServerUnauthenticatedError(
            f"device requests need the headers {H_DEVICE}, {H_TS}, {H_NONCE} and {H_SIG}",
            code="server.unsigned",
        )
    if not ts.isdigit() or abs(int(ts) - now) > SKEW_SECONDS:
        raise ServerUnauthenticatedError(
            f"{H_TS} must be unix seconds within {SKEW_SECONDS}s of the server clock",
            code="server.clock_skew",
            field=H_TS,
        )
    if not _NONCE.match(nonce):
        raise ServerUnauthenticatedError(
            f"{H_NONCE} must be 16-64 characters of [A-Za-z0-9_-]", code="server.bad_nonce", field=H_NONCE
        )
    try:
        raw_sig = base64.b64decode(sig, validate=True)
    except ValueError as exc:
        raise ServerUnauthenticatedError(f"{H_SIG} is not base64", code="server.bad_signature") from exc
    public = Ed25519PublicKey.from_public_bytes(public_key_for(device))
    try:
        public.verify(raw_sig, signing_string(method, target, body, timestamp=ts, nonce=nonce, device=device))
    except InvalidSignature as exc:
        raise ServerUnauthenticatedError(
            "the request signature does not match the device key", code="server.bad_signature"
        ) from exc
    if not nonces.add(f"{device}:{nonce}", now):
        raise ServerUnauthenticatedError("this request was already received (replay)", code="server.replay")
    return device
