"""Liveness and readiness probes: HTTP GET, TCP connect, or a command's exit status."""

from __future__ import annotations

import http.client
import socket
import subprocess
from dataclasses import dataclass
from typing import Literal

from edgefleet.errors import InvalidInputError

__all__ = ["Probe", "run_probe"]

ProbeKind = Literal["http", "tcp", "exec"]


@dataclass(frozen=True)
class Probe:
    """One probe: ``http`` (GET host:port/path, 2xx/3xx passes), ``tcp`` (connect) or ``exec``
    (exit status 0, run on the host with ``timeout_s``).

    It runs every ``period_s`` after ``initial_delay_s``; ``failure_threshold`` consecutive
    failures fail it, one success passes it.
    """

    kind: ProbeKind
    port: int | None = None
    host: str = "127.0.0.1"
    path: str = "/"
    command: tuple[str, ...] = ()
    period_s: float = 5.0
    timeout_s: float = 1.0
    initial_delay_s: float = 0.0
    failure_threshold: int = 3

    def __post_init__(self) -> None:
        if self.kind not in {"http", "tcp", "exec"}:
            raise InvalidInputError(f"probe: kind {self.kind!r}; allowed http, tcp, exec", field="probe")
        if self.kind in {"http", "tcp"} and not (self.port and 0 < self.port < 65536):
            raise InvalidInputError(f"probe: {self.kind} needs a port 1-65535", field="probe.port")
        if self.kind == "exec" and not self.command:
            raise InvalidInputError("probe: exec needs a command", field="probe.command")
        if self.period_s <= 0 or self.timeout_s <= 0 or self.failure_threshold < 1:
            raise InvalidInputError("probe: period and timeout > 0, failure threshold >= 1", field="probe")


def run_probe(probe: Probe) -> tuple[bool, str]:
    """Run ``probe`` once: (passed, what happened)."""
    try:
        if probe.kind == "tcp":
            with socket.create_connection((probe.host, int(probe.port or 0)), timeout=probe.timeout_s):
                return True, "connected"
        if probe.kind == "http":
            conn = http.client.HTTPConnection(probe.host, probe.port, timeout=probe.timeout_s)
            try:
                conn.request("GET", probe.path)
                status = conn.getresponse().status
            finally:
                conn.close()
            return 200 <= status < 400, f"HTTP {status}"
        done = subprocess.run(list(probe.command), capture_output=True, timeout=probe.timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {probe.timeout_s} s"
    except OSError as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return done.returncode == 0, f"exit {done.returncode}"
