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


def _line(name: str, value: float, **labels: object) -> str:
    if labels:
        inner = ",".join(f'{k}="{str(v).replace(chr(34), "")}"' for k, v in labels.items())
        return f"{name}{{{inner}}} {value:g}"
    return f"{name} {value:g}"


def metrics_text(agent: Agent) -> str:
    """The Prometheus text exposition of the agent, the device and its workloads."""
    st = agent.status()
    out = [
        "# TYPE edgefleet_agent_up gauge",
        _line("edgefleet_agent_up", 1),
        "# TYPE edgefleet_agent_server_reachable gauge",
        _line("edgefleet_agent_server_reachable", 1 if st["server_reachable"] else 0),
        "# TYPE edgefleet_agent_revision gauge",
        _line("edgefleet_agent_revision", st["desired_revision"], kind="desired"),
        _line("edgefleet_agent_revision", st["reached_revision"], kind="reached"),
        "# TYPE edgefleet_agent_polls_total counter",
        _line("edgefleet_agent_polls_total", st["polls"]),
        "# TYPE edgefleet_agent_reports_total counter",
        _line("edgefleet_agent_reports_total", st["reports"]),
        "# TYPE edgefleet_agent_outbox_events gauge",
        _line("edgefleet_agent_outbox_events", st["outbox"]["queued"]),
        "# TYPE edgefleet_agent_outbox_dropped_total counter",
        _line("edgefleet_agent_outbox_dropped_total", st["outbox"]["dropped"]),
        "# TYPE edgefleet_agent_updates_total counter",
    ]
    out += [_line("edgefleet_agent_updates_total", n, result=k) for k, n in st["updates"].items()]
    with contextlib.suppress(OSError):
        rss = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        out += ["# TYPE edgefleet_agent_rss_bytes gauge", _line("edgefleet_agent_rss_bytes", rss)]
    with contextlib.suppress(OSError):
        load1 = os.getloadavg()[0]
        out += ["# TYPE edgefleet_device_load1 gauge", _line("edgefleet_device_load1", load1)]
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem = {
            ln.split(":")[0]: int(ln.split()[1]) * 1024
            for ln in Path("/proc/meminfo").read_text().splitlines()
        }
        out += [
            "# TYPE edgefleet_device_memory_bytes gauge",
            _line("edgefleet_device_memory_bytes", mem["MemTotal"], kind="total"),
            _line("edgefleet_device_memory_bytes", mem["MemAvailable"], kind="available"),
        ]
    temps = sorted(Path("/sys/class/thermal").glob("thermal_zone*/temp"))
    if temps:
        out.append("# TYPE edgefleet_device_temperature_celsius gauge")
        for t in temps:
            with contextlib.suppress(OSError, ValueError):
                out.append(
                    _line(
                        "edgefleet_device_temperature_celsius", int(t.read_text()) / 1000, zone=t.parent.name
                    )
                )
    out += [
        "# TYPE edgefleet_workload_up gauge",
        "# TYPE edgefleet_workload_ready gauge",
        "# TYPE edgefleet_workload_restarts_total counter",
        "# TYPE edgefleet_workload_ooms_total counter",
        "# TYPE edgefleet_workload_cpu_seconds_total counter",
        "# TYPE edgefleet_workload_memory_bytes gauge",
    ]
    sup = agent.supervisor
    for w in st["workloads"]:
        lab = {"deployment": w["deployment"], "version": w["version"]}
        out.append(_line("edgefleet_workload_up", 1 if w.get("state") == "running" else 0, **lab))
        out.append(_line("edgefleet_workload_ready", 1 if w.get("ready") else 0, **lab))
        out.append(_line("edgefleet_workload_restarts_total", w.get("restarts", 0), **lab))
        if sup is not None:
            with contextlib.suppress(EdgefleetError):
                ws = sup.status(w["sandbox"])
                ooms = sum(1 for e in ws.exits if e.oom_killed)
                out.append(_line("edgefleet_workload_ooms_total", ooms, **lab))
                u = ws.usage
                if u is not None:
                    for attr, metric in (
                        ("cpu_time_s", "edgefleet_workload_cpu_seconds_total"),
                        ("memory_current", "edgefleet_workload_memory_bytes"),
                    ):
                        val = getattr(u, attr, None)
                        if val is not None:
                            out.append(_line(metric, float(val), **lab))
    return "\n".join(out) + "\n"


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
