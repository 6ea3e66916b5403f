"""Local endpoints: the status API on a Unix socket and ``/metrics`` on a local TCP port."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefleet.errors import EdgefleetError

if TYPE_CHECKING:
    from edgefleet.agent.agent import Agent

__all__ = ["metrics_text", "query_status", "request", "serve_metrics", "serve_status"]


def _answer(agent: Agent, conn: socket.socket) -> bytes:
    """One request: a JSON line ``{"op": "status" | "lock" | "unlock", ...}``; nothing sent = status."""
    conn.settimeout(2.0)
    data = b""
    with contextlib.suppress(OSError):
        while b"\n" not in data and len(data) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
    try:
        req = json.loads(data) if data.strip() else {"op": "status"}
        op = req.get("op", "status") if isinstance(req, dict) else None
        if op == "lock":
            out: Any = agent.set_lock(
                str(req.get("reason") or ""), str(req.get("by") or "operator"), req.get("ttl")
            )
        elif op == "unlock":
            out = agent.set_lock(None)
        elif op == "status":
            out = agent.status()
        else:
            out = {
                "error": {
                    "code": "agent.invalid_input",
                    "message": f"op: {op!r}; allowed status, lock, unlock",
                }
            }
    except EdgefleetError as exc:
        out = {"error": {"code": exc.code, "message": exc.message}}
    except ValueError as exc:
        out = {"error": {"code": "agent.invalid_input", "message": f"request is not JSON: {exc}"}}
    return json.dumps(out, default=str).encode()


def serve_status(agent: Agent, path: Path, halt: threading.Event) -> None:
    """Answer every connection on ``path`` (mode 0600): the status, or a lock/unlock request."""
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
                conn.sendall(_answer(agent, conn))


def query_status(path: Path, timeout: float = 5.0) -> dict[str, Any]:
    """What the agent listening on ``path`` says about itself."""
    return request(path, {"op": "status"}, timeout)


def request(path: Path, req: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """Send one request to the agent listening on ``path``; its answer (an error is raised)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(path))
            s.sendall(json.dumps(req).encode() + b"\n")
            chunks = []
            while data := s.recv(65536):
                chunks.append(data)
    except OSError as exc:
        raise EdgefleetError(
            f"no agent answers on {path}: {exc.strerror or exc} (is `edgefleet agent run` running?)",
            code="agent.not_running",
        ) from exc
    out: dict[str, Any] = json.loads(b"".join(chunks))
    if isinstance(out, dict) and isinstance(out.get("error"), dict):
        err = out["error"]
        code = str(err.get("code"))
        if code == "agent.invalid_input":
            from edgefleet.agent.errors import AgentInputError

            raise AgentInputError(str(err.get("message")), code=code)
        raise EdgefleetError(str(err.get("message")), code=code)
    return out


def metrics_text(agent: Agent) -> str:
    """The Prometheus text exposition of the agent, the device and its workloads."""
    from edgefleet.agent.exposition import render
    from edgefleet.agent.metrics import collect

    return render(collect(agent))


def serve_metrics(agent: Agent, port: int, halt: threading.Event) -> None:
    # imported here: http.server (email, html, mimetypes, socketserver) costs ~1.3 MB of RSS, which an
    # agent with --metrics-port -1 (the default) never needs
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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
