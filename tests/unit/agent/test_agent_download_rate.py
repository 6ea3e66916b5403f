"""The optional bandwidth cap on bundle downloads (``--download-rate``)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edgefleet.agent.__main__ import _rate
from edgefleet.agent.client import DeviceClient, Throttle
from edgefleet.errors import EdgefleetError

BLOB = os.urandom(640 * 1024)


class _Blob(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        start = int(self.headers.get("Range", "bytes=0-")[6:].rstrip("-") or 0)
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(BLOB) - start))
        self.end_headers()
        self.wfile.write(BLOB[start:])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def blob_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Blob)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_throttle_lets_bytes_through_at_the_rate_with_a_one_second_burst() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    throttle = Throttle(1000, clock=lambda: now[0], sleep=sleep)
    for _ in range(10):
        throttle(500)
    assert now[0] == pytest.approx(5.0)  # 5000 bytes at 1000 a second, starting with an empty bucket
    now[0] += 60  # idle: the bucket refills to one second's worth, no more
    throttle(1000)
    throttle(1000)
    assert now[0] == pytest.approx(66.0)


def test_download_with_a_cap_takes_as_long_as_the_rate_says_and_keeps_the_bytes(
    blob_url: str, tmp_path: Path
) -> None:
    sha = hashlib.sha256(BLOB).hexdigest()
    t0 = time.monotonic()
    DeviceClient(blob_url).download("/b", tmp_path / "fast", sha256=sha, size=len(BLOB))
    fast = time.monotonic() - t0
    t0 = time.monotonic()
    DeviceClient(blob_url, download_rate=256 * 1024).download(
        "/b", tmp_path / "slow", sha256=sha, size=len(BLOB)
    )
    slow = time.monotonic() - t0
    assert (tmp_path / "slow").read_bytes() == BLOB
    assert slow >= 2.3, (fast, slow)  # 640 KiB at 256 KiB/s from an empty bucket: 2.5 s
    assert slow < 2.5 + 20


@pytest.mark.parametrize(
    ("text", "rate"), [("2M", 2 << 20), ("512k", 512 << 10), ("1.5M/s", 1.5 * (1 << 20)), ("4096", 4096)]
)
def test_download_rate_option_takes_sizes(text: str, rate: float) -> None:
    assert _rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "0", "100", "-2M", "2T"])
def test_a_bad_download_rate_is_refused_naming_the_option(text: str) -> None:
    with pytest.raises(EdgefleetError, match="--download-rate"):
        _rate(text)


def test_the_agent_exits_2_on_a_bad_download_rate(tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgefleet.agent",
            "run",
            "--state-dir",
            str(tmp_path),
            "--download-rate",
            "fast",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2, r.stderr
    assert "--download-rate" in r.stderr
    assert "Traceback" not in r.stderr
