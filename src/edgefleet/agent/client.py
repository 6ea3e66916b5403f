"""The device API client on stdlib ``http.client`` (no httpx: the agent stays small).

Every call after enrollment is signed with the device key. Transport failures and 5xx answers are
:class:`AgentUnavailableError` (the loop backs off and retries); 4xx answers are raised with the
server's error code.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import os
import ssl
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgefleet.agent.errors import AgentUnavailableError, AgentVerificationError
from edgefleet.agent.fsio import storage_error
from edgefleet.agent.protocol import sign_request
from edgefleet.agent.tls import context_for, pem_fingerprint, untrusted_error
from edgefleet.errors import EdgefleetError, PermissionDeniedError

__all__ = ["DeviceClient", "Response"]


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Throttle:
    """A token bucket: bytes pass at ``rate`` a second on average, in bursts of at most one second's
    worth; ``throttle(n)`` sleeps as long as taking ``n`` bytes needs."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._tokens = 0.0
        self._t = clock()

    def __call__(self, n: int) -> None:
        now = self._clock()
        self._tokens = min(self.rate, self._tokens + (now - self._t) * self.rate) - n
        self._t = now
        if self._tokens < 0:
            self._sleep(-self._tokens / self.rate)


class DeviceClient:
    def __init__(
        self,
        server: str,
        *,
        timeout: float = 30.0,
        ca_pem: bytes | None = None,
        download_rate: float | None = None,
    ) -> None:
        """``ca_pem``: the only CA an https server is verified against (None: the system CAs);
        ``download_rate``: bundle downloads average at most this many bytes a second (None: no cap)."""
        url = urllib.parse.urlsplit(server)
        if url.scheme not in {"http", "https"} or not url.hostname:
            raise EdgefleetError(f"--server: {server!r} is not an http(s) URL", code="agent.invalid_input")
        self.server = server.rstrip("/")
        self._url = url
        self._timeout = timeout
        self._ssl = context_for(ca_pem) if url.scheme == "https" else None
        self._pinned = pem_fingerprint(ca_pem) if ca_pem is not None else None
        self._throttle = Throttle(download_rate) if download_rate else None
        self.device_id: str | None = None
        self.key: Ed25519PrivateKey | None = None

    def _conn(self, timeout: float) -> http.client.HTTPConnection:
        if self._ssl is not None:
            return http.client.HTTPSConnection(
                self._url.hostname or "", self._url.port, timeout=timeout, context=self._ssl
            )
        return http.client.HTTPConnection(self._url.hostname or "", self._url.port, timeout=timeout)

    def request(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        *,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        signed: bool = True,
    ) -> Response:
        hdrs = dict(headers or {})
        if signed and self.key is not None and self.device_id is not None:
            hdrs.update(sign_request(self.key, self.device_id, method, target, body))
        if body:
            hdrs.setdefault("Content-Type", "application/json")
        conn = self._conn(timeout or self._timeout)
        try:
            conn.request(method, self._url.path.rstrip("/") + target, body=body or None, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            resp = Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        except ssl.SSLCertVerificationError as exc:
            raise untrusted_error(exc, self.server, self._pinned) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise AgentUnavailableError(f"cannot reach {self.server}: {exc}") from exc
        finally:
            conn.close()
        if resp.status >= 500:
            raise AgentUnavailableError(f"{method} {target}: server answered {resp.status}")
        if resp.status >= 400:
            code, message = f"http.{resp.status}", resp.body[:200].decode(errors="replace")
            try:
                err = json.loads(resp.body)["error"]
                code, message = str(err["code"]), str(err["message"])
            except (ValueError, KeyError, TypeError):
                pass
            cls = PermissionDeniedError if resp.status == 403 else EdgefleetError
            raise cls(f"{method} {target}: {message}", code=code)
        return resp

    def enroll(self, body: dict[str, Any]) -> dict[str, Any]:
        r = self.request("POST", "/device/v1/enroll", json.dumps(body).encode(), signed=False)
        data: dict[str, Any] = r.json()
        return data

    def desired_state(self, etag: str | None, wait: float) -> tuple[int, str | None, Any]:
        """``(status, etag, envelope)``: 304 with no body when nothing changed within ``wait``."""
        target = "/device/v1/desired-state" + (f"?wait={wait:g}" if wait > 0 else "")
        headers = {"If-None-Match": etag} if etag else {}
        r = self.request("GET", target, headers=headers, timeout=wait + self._timeout)
        if r.status == 304:
            return 304, etag, None
        return r.status, r.headers.get("etag"), r.json()

    def report(self, body: dict[str, Any]) -> dict[str, Any]:
        r = self.request("POST", "/device/v1/report", json.dumps(body).encode())
        out: dict[str, Any] = r.json() or {}
        return out

    def download(
        self,
        url: str,
        dest: Path,
        *,
        sha256: str,
        size: int,
        attempts: int = 6,
        sleep: Callable[[float], None] = time.sleep,
        chunk: int = 1 << 16,
        on_chunk: Callable[[int], None] | None = None,
    ) -> Path:
        """Fetch a blob into ``dest``, resuming a partial ``dest.part`` with Range; check size and sha256."""
        part = dest.with_name(dest.name + ".part")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(dest.parent, exc, "download") from exc
        delay = 0.5
        for attempt in range(attempts):
            have = part.stat().st_size if part.exists() else 0
            if have > size:
                part.unlink()
                have = 0
            if have < size:
                try:
                    self._fetch_range(url, part, have, chunk, on_chunk)
                except AgentUnavailableError:
                    if attempt == attempts - 1:
                        raise
                    sleep(delay)
                    delay = min(delay * 2, 30.0)
                    continue
            got = part.stat().st_size
            if got != size:
                if attempt == attempts - 1:
                    break
                continue
            digest = hashlib.sha256()
            with part.open("rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
            if digest.hexdigest() != sha256:
                part.unlink()
                raise AgentVerificationError(
                    f"bundle blob: sha256 {digest.hexdigest()} differs from {sha256} "
                    "in the signed desired state",
                    code="agent.hash_mismatch",
                    expected=sha256,
                    actual=digest.hexdigest(),
                )
            part.replace(dest)
            return dest
        raise AgentVerificationError(
            f"bundle blob: {part.stat().st_size if part.exists() else 0} bytes; "
            f"the signed desired state says {size}",
            code="agent.size_mismatch",
        )

    def _fetch_range(
        self, url: str, part: Path, have: int, chunk: int, on_chunk: Callable[[int], None] | None = None
    ) -> None:
        target = urllib.parse.urlsplit(url).path if "://" in url else url
        headers = {"Range": f"bytes={have}-"} if have else {}
        if self.key is not None and self.device_id is not None:
            headers.update(sign_request(self.key, self.device_id, "GET", target))
        conn = self._conn(self._timeout)
        try:
            conn.request("GET", self._url.path.rstrip("/") + target, headers=headers)
            r = conn.getresponse()
            if r.status >= 400:
                r.read()
                if r.status >= 500:
                    raise AgentUnavailableError(f"GET {target}: server answered {r.status}")
                raise EdgefleetError(f"GET {target}: server answered {r.status}", code=f"http.{r.status}")
            mode = "ab" if r.status == 206 else "wb"
            with part.open(mode) as f:
                while block := r.read(chunk):
                    f.write(block)
                    if self._throttle is not None:
                        self._throttle(len(block))
                    if on_chunk is not None:
                        f.flush()
                        os.fsync(f.fileno())
                        on_chunk(len(block))
                f.flush()
                os.fsync(f.fileno())
        except ssl.SSLCertVerificationError as exc:
            raise untrusted_error(exc, self.server, self._pinned) from exc
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):  # our disk, not the network
                raise storage_error(part, exc, "download") from exc
            raise AgentUnavailableError(f"download of {target} interrupted: {exc}") from exc
        except http.client.HTTPException as exc:
            raise AgentUnavailableError(f"download of {target} interrupted: {exc}") from exc
        finally:
            conn.close()
