"""A real Prometheus (Debian's `prometheus`) on a free port with its storage in a temp dir."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgefleet.testing.require import require, require_tool


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, auth: tuple[str, str] | None) -> Any:
    headers = {}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    req = urllib.request.Request(url, headers=headers)  # noqa: S310 - a local test URL
    return urllib.request.urlopen(req, timeout=10)  # noqa: S310 - a local test URL


def _bcrypt(password: str) -> str:
    """A bcrypt hash for Prometheus' web config (glibc's libxcrypt makes it; no extra package)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
        except ImportError:  # Python 3.13 dropped the module
            require(False, "the crypt module (for a bcrypt hash)")
    salt = crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)  # noqa: S324 - bcrypt, what Prometheus takes
    return str(crypt.crypt(password, salt))


@dataclass
class Prometheus:
    url: str
    log: Path
    auth: tuple[str, str] | None = None

    def query(self, promql: str) -> list[dict[str, Any]]:
        qs = urllib.parse.urlencode({"query": promql})
        with _get(f"{self.url}/api/v1/query?{qs}", self.auth) as r:
            data = json.loads(r.read())
        assert data["status"] == "success", data
        return list(data["data"]["result"])

    def wait_for(self, promql: str, timeout: float = 60.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.query(promql)
            if got:
                return got
            time.sleep(0.5)
        raise AssertionError(f"no result for {promql!r}; log:\n{self.log.read_text()[-3000:]}")


@contextmanager
def run_prometheus(
    tmp: Path,
    targets: dict[str, str] | None = None,
    *,
    receiver: bool = False,
    basic_auth: tuple[str, str] | None = None,
) -> Iterator[Prometheus]:
    """Prometheus scraping ``targets`` (job -> host:port) every second; ``receiver`` takes remote-write;
    ``basic_auth`` (user, password) protects every endpoint, remote-write included."""
    require_tool("prometheus")
    tmp.mkdir(parents=True, exist_ok=True)
    jobs = "".join(
        f"  - job_name: {job}\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['{t}']\n"
        for job, t in (targets or {}).items()
    )
    cfg = tmp / "prometheus.yml"
    cfg.write_text("global:\n  scrape_interval: 1s\nscrape_configs:\n" + (jobs or "  []\n"))
    if not jobs:
        cfg.write_text("global:\n  scrape_interval: 1s\n")
    port = free_port()
    log = tmp / "prometheus.log"
    args = [
        shutil.which("prometheus") or "prometheus",
        f"--config.file={cfg}",
        f"--storage.tsdb.path={tmp / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    if receiver:
        args.append("--web.enable-remote-write-receiver")
    if basic_auth is not None:
        web = tmp / "web.yml"
        web.write_text(f"basic_auth_users:\n  {basic_auth[0]}: {_bcrypt(basic_auth[1])}\n")
        args.append(f"--web.config.file={web}")
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with _get(url + "/-/ready", basic_auth) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("prometheus did not start:\n" + log.read_text()[-3000:])
            time.sleep(0.2)
        yield Prometheus(url, log, basic_auth)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
