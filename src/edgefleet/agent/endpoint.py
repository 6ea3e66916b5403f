"""The stable endpoint of a deployment: one port that moves from the old workload to the new one.

Every workload runs on its own ports (blue/green needs two at once). Clients talk to the
deployment's endpoint instead, a small HTTP/1.1 forwarder in the agent on a port that never changes
across updates and agent restarts (kept in ``state.json``, or ``serving.http_port`` of the desired
state). Each request is forwarded on its own connection to the backend current *when the request
arrives*, so after a switch the next request goes to the new workload while requests already
running on the old one finish there; :meth:`Endpoint.drain` waits for those before the agent stops
the old workload. No request is refused or cut during an update (tested under continuous load).

The forwarder understands just enough HTTP/1.1 to find where a request and a response end
(``Content-Length``, ``chunked``, or a response delimited by close); ``Expect: 100-continue`` is
answered here. Bodies are streamed, not buffered.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Final

__all__ = ["Endpoint"]

_MAX_HEAD: Final = 64 * 1024
_CHUNK: Final = 64 * 1024
_HOP: Final = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"expect", b"upgrade"})


class _ClosedError(Exception):
    """The peer closed the connection."""


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> None:
        data = self.sock.recv(_CHUNK)
        if not data:
            raise _ClosedError
        self.buf += data

    def head(self) -> bytes:
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > _MAX_HEAD:
                raise ValueError("header section too large")
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return head

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if len(self.buf) > _MAX_HEAD:
                raise ValueError("chunk line too long")
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def exactly(self, n: int, out: socket.socket) -> None:
        while n > 0:
            if not self.buf:
                self._fill()
            part, self.buf = self.buf[:n], self.buf[n:]
            out.sendall(part)
            n -= len(part)

    def chunked(self, out: socket.socket) -> None:
        while True:
            line = self.line()
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            out.sendall(line + b"\r\n")
            if size == 0:
                while True:  # trailers, then the empty line
                    trailer = self.line()
                    out.sendall(trailer + b"\r\n")
                    if not trailer:
                        return
            self.exactly(size + 2, out)

    def until_close(self, out: socket.socket) -> None:
        if self.buf:
            out.sendall(self.buf)
            self.buf = b""
        while data := self.sock.recv(_CHUNK):
            out.sendall(data)


def _parse(head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    lines = head.split(b"\r\n")
    headers = []
    for ln in lines[1:]:
        name, sep, value = ln.partition(b":")
        if not sep:
            raise ValueError("malformed header line")
        headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _get(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


class Endpoint:
    """A listening port that forwards HTTP/1.1 to ``backend`` (``set_backend`` moves it)."""

    def __init__(self, port: int, *, host: str = "127.0.0.1", backend: int | None = None) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(256)
        self._sock.settimeout(0.5)
        self.port = int(self._sock.getsockname()[1])
        self._backend = backend
        self._inflight: dict[int, int] = {}
        self._cv = threading.Condition()
        self._halt = threading.Event()
        self.requests = 0
        self.failures = 0
        self._thread = threading.Thread(target=self._accept, name=f"endpoint-{self.port}", daemon=True)
        self._thread.start()

    @property
    def backend(self) -> int | None:
        return self._backend

    def set_backend(self, port: int | None) -> None:
        with self._cv:
            self._backend = port

    def drain(self, port: int, timeout: float = 30.0) -> bool:
        """Wait until no forwarded request is running on backend ``port``; False on timeout."""
        end = time.monotonic() + timeout
        with self._cv:
            while self._inflight.get(port, 0) > 0:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def close(self) -> None:
        self._halt.set()
        with contextlib.suppress(OSError):
            self._sock.close()

    # -- serving -----------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._halt.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _take(self) -> int | None:
        with self._cv:
            port = self._backend
            if port is not None:
                self._inflight[port] = self._inflight.get(port, 0) + 1
            return port

    def _done(self, port: int) -> None:
        with self._cv:
            self._inflight[port] -= 1
            self._cv.notify_all()

    def _client(self, conn: socket.socket) -> None:
        reader = _Reader(conn)
        with conn, contextlib.suppress(_ClosedError, OSError, ValueError):
            while not self._halt.is_set():
                head = reader.head()
                start, headers = _parse(head)
                keep = self._forward(conn, reader, start, headers)
                if not keep:
                    return

    def _connect(self) -> tuple[int, socket.socket] | None:
        """A connection to the current backend, retried while a switch or a restart is under way."""
        end = time.monotonic() + 10.0
        while True:
            port = self._take()
            if port is not None:
                try:
                    up = socket.create_connection(("127.0.0.1", port), timeout=300)
                except OSError:
                    self._done(port)
                else:
                    up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    return port, up
            if time.monotonic() > end or self._halt.is_set():
                return None
            time.sleep(0.05)

    def _forward(
        self, conn: socket.socket, reader: _Reader, start: bytes, headers: list[tuple[bytes, bytes]]
    ) -> bool:
        version = start.rsplit(b" ", 1)[-1]
        client_close = (_get(headers, b"connection") or b"").lower() == b"close" or version == b"HTTP/1.0"
        if (_get(headers, b"expect") or b"").lower() == b"100-continue":
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        picked = self._connect()
        if picked is None:
            self.failures += 1
            body = (
                b'{"error": {"code": "agent.no_backend", '
                b'"message": "no workload serves this deployment now"}}'
            )
            conn.sendall(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
                + body
            )
            return False
        port, up = picked
        try:
            with up:
                kept = [(k, v) for k, v in headers if k.lower() not in _HOP]
                out = start + b"\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in kept)
                up.sendall(out + b"connection: close\r\n\r\n")
                te = (_get(headers, b"transfer-encoding") or b"").lower()
                if b"chunked" in te:
                    reader.chunked(up)
                else:
                    reader.exactly(int(_get(headers, b"content-length") or b"0"), up)
                back = _Reader(up)
                rstart, rheaders = _parse(back.head())
                framed = (
                    _get(rheaders, b"content-length") is not None
                    or b"chunked" in (_get(rheaders, b"transfer-encoding") or b"").lower()
                )
                keep = framed and not client_close
                rkept = [(k, v) for k, v in rheaders if k.lower() not in _HOP]
                conn.sendall(
                    rstart
                    + b"\r\n"
                    + b"".join(k + b": " + v + b"\r\n" for k, v in rkept)
                    + (b"connection: keep-alive\r\n\r\n" if keep else b"connection: close\r\n\r\n")
                )
                back.until_close(conn)
                self.requests += 1
                return keep
        finally:
            self._done(port)
