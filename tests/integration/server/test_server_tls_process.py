"""`edgefleet server run` (TLS by default) as a process: devices and the CLI over HTTPS, pinned to its CA."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from edgefleet.server.tls import TlsConfigError, client_ssl_context

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "EDGEFLEET_CA_CERT"}
    return subprocess.run(
        [sys.executable, "-m", "edgefleet", *args],
        capture_output=True,
        text=True,
        check=False,
        env=base | (env or {}),
        timeout=120,
    )


FP = re.compile(r"TLS CA SHA-256 fingerprint: ([0-9A-F:]{95})")


def _start(data: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "edgefleet", "server", "run", "--port", str(port), "--data-dir", str(data),
             "--tls-san", "edge.test"],  # TLS (auto) is the default
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, ca: Path, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/healthz", verify=client_ssl_context(ca), timeout=2).status_code == 200:
                return
        except (httpx.HTTPError, OSError, TlsConfigError):
            pass
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


def _check_refusals(url: str, port: int, token: str, join: str) -> None:
    # no CA: refused with a stable code, not a traceback
    for args in (
        ("device", "ls", "--server", url, "--token", token),
        ("simulate", "--server", url, "--join-token", join, "--devices", "1", "--duration", "0"),
    ):
        r = _cli(*args)
        assert r.returncode == 7, (args, r.stdout, r.stderr)
        assert "server.tls_untrusted" in r.stderr, r.stderr
        assert "--ca-cert" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    # plain http on the TLS port gets no answer
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    r = _cli("device", "ls", "--server", f"http://127.0.0.1:{port}", "--token", token)
    assert r.returncode == 6, r.stderr
    assert "server.unreachable" in r.stderr, r.stderr


def test_tls_auto_server_with_simulated_devices_and_the_cli(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    assert _cli("server", "migrate", "--data-dir", str(data)).returncode == 0
    port = _free_port()
    log = tmp_path / "server.log"
    url = f"https://127.0.0.1:{port}"
    ca = data / "tls" / "ca.pem"
    proc = _start(data, port, log)
    try:
        _wait_healthy(proc, url, ca, log)
        text = log.read_text()
        assert f"https://127.0.0.1:{port}" in text
        assert f"TLS CA certificate: {ca}" in text
        fp = FP.search(text)
        token = re.search(r"(efk_\S+)", text)
        assert fp, text
        assert token, text
        assert (data / "tls/ca-key.pem").stat().st_mode & 0o777 == 0o600
        assert (data / "tls/server-key.pem").stat().st_mode & 0o777 == 0o600

        with httpx.Client(
            base_url=url + "/api/v1/projects/default",
            headers={"Authorization": f"Bearer {token.group(1)}"},
            verify=client_ssl_context(ca),
        ) as api:
            join = api.post("/join-tokens", json={"name": "sim", "max_uses": None}).json()["token"]

        sim = _cli(
            "simulate", "--server", url, "--ca-cert", str(ca), "--join-token", join,
            "--devices", "3", "--poll-interval", "0.5", "--duration", "2",
        )  # fmt: skip
        assert sim.returncode == 0, sim.stderr
        assert sim.stdout.startswith("3 devices"), sim.stdout
        assert " 0 errors" in sim.stdout, sim.stdout

        env = {"EDGEFLEET_SERVER": url, "EDGEFLEET_TOKEN": token.group(1), "EDGEFLEET_CA_CERT": str(ca)}
        ls = _cli("device", "ls", "--json", env=env)
        assert ls.returncode == 0, ls.stderr
        assert ls.stdout.count('"sim-') == 3, ls.stdout

        _check_refusals(url, port, token.group(1), join)
    finally:
        _stop(proc)

    # a restart reuses the CA: same fingerprint
    proc = _start(data, _free_port(), log)
    try:
        deadline = time.monotonic() + 60
        while len(FP.findall(log.read_text())) < 2:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert FP.findall(log.read_text()) == [fp.group(1)] * 2
    finally:
        _stop(proc)
