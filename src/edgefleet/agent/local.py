"""Local endpoints: the status API on a Unix socket and ``/metrics`` on a local TCP port."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefleet.errors import EdgefleetError

if TYPE_CHECKING:
    from edgefleet.agent.agent import Agent

__all__ = ["metrics_text", "query_status", "serve_metrics", "serve_status"]


def serve_status(agent: Agent, path: Path, halt: threading.Event) -> None:
    """Answer every connection on ``path`` with the status JSON, then close it (mode 0600)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        srv.bind(str(path))
    finally:
        os.umask(old)
    srv.listen(8)
    srv.settimeout(0.5)
    with srv:
        while not halt.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.sendall(json.dumps(agent.status(), default=str).encode())


def query_status(path: Path, timeout: float = 5.0) -> dict[str, Any]:
    """What the agent listening on ``path`` says about itself."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(path))
            chunks = []
            while data := s.recv(65536):
                chunks.append(data)
    except OSError as exc:
        raise EdgefleetError(
            f"no agent answers on {path}: {exc.strerror or exc} (is `edgefleet agent run` running?)",
            code="agent.not_running",
        ) from exc
    out: dict[str, Any] = json.loads(b"".join(chunks))
    return out


def metrics_text(agent: Agent) -> str:
    """The Prometheus text exposition of the agent, the device and its workloads."""
    from edgefleet.agent.exposition import render
    from edgefleet.agent.metrics import collect

    return render(collect(agent))


def serve_metrics(agent: Agent, port: int, halt: threading.Event) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = metrics_text(agent).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ARG002 - the stdlib's signature
            return

    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    agent.metrics_port = int(srv.server_address[1])

    def _stopper() -> None:
        halt.wait()
        srv.shutdown()

    threading.Thread(target=_stopper, daemon=True).start()
    with srv:
        srv.serve_forever(poll_interval=0.5)
