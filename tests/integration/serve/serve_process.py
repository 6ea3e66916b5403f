"""Run `edgefleet serve` as a real process on free ports and read its addresses from the summary."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ServeProcess:
    process: subprocess.Popen[str]
    http: str
    grpc: str
    output: list[str]


@contextmanager
def serve_process(
    model: Path, *extra: str, prelude: str = "", timeout: float = 60.0
) -> Iterator[ServeProcess]:
    """Start the CLI, wait for 'ready', yield the addresses, then SIGTERM it and check it exits 0.

    ``prelude`` is Python run in the process before the CLI (to move it into a cgroup, say).
    """
    env = {**os.environ, "EDGEFLEET_LOG_FORMAT": "json"}
    args = ["serve", str(model), "--http-port", "0", "--grpc-port", "0", *extra]
    launcher = f"{prelude}\nfrom edgefleet.cli.app import main\nmain({args!r})"
    proc = subprocess.Popen(
        [sys.executable, "-c", launcher],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("ready"):
                ready.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while not ready.is_set():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("edgefleet serve did not become ready:\n" + "".join(lines))
        time.sleep(0.02)
    text = "".join(lines)
    http = re.search(r"REST\s+(http://\S+)/v2", text)
    grpc = re.search(r"gRPC\s+(\S+)", text)
    assert http, text
    assert grpc, text
    handle = ServeProcess(proc, http.group(1).removeprefix("http://"), grpc.group(1), lines)
    try:
        yield handle
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        finally:
            reader.join(timeout=5)
            if proc.stdout is not None:
                proc.stdout.close()
        assert code == 0, "".join(lines)
