"""Maintenance windows, the update lock, the stable endpoint's forwarding (no server, no sandbox)."""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgefleet.agent.endpoint import Endpoint
from edgefleet.agent.errors import AgentInputError
from edgefleet.agent.lock import active, file_lock_holder, operator_lock, parse_ttl
from edgefleet.errors import InvalidInputError
from edgefleet.maintenance import parse_schedule

pytestmark = pytest.mark.unit

MON_0300 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # a Monday


def test_a_weekday_window_is_open_inside_and_says_when_it_opens_next() -> None:
    s = parse_schedule({"windows": ["Mon-Fri 02:00-04:00"], "timezone": "UTC"})
    assert s.is_open(MON_0300)
    assert not s.is_open(MON_0300.replace(hour=4))  # the end is exclusive
    sat = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert s.next_open(sat) == datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


def test_a_window_crossing_midnight_belongs_to_the_day_it_opens_and_follows_its_time_zone() -> None:
    s = parse_schedule({"windows": ["Sat 22:00-02:00"], "timezone": "Europe/Berlin"})
    assert s.is_open(datetime(2026, 11, 28, 23, 30, tzinfo=UTC))  # 00:30 CET Sunday
    assert not s.is_open(datetime(2026, 11, 29, 1, 30, tzinfo=UTC))  # 02:30 CET Sunday
    assert parse_schedule({"windows": ["daily 00:00-24:00"]}).is_open(MON_0300)
    assert parse_schedule({"windows": ["Fri-Mon 01:00-05:00"]}).is_open(MON_0300)  # a wrapping range


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"windows": ["Mon-Fry 02:00-04:00"]}, "maintenance.windows[0]"),
        ({"windows": ["Mon 25:00-26:00"]}, "maintenance.windows[0]"),
        ({"windows": ["Mon 02:00-02:00"]}, "maintenance.windows[0]"),
        ({"windows": ["Mon 2am-4am"]}, "maintenance.windows[0]"),
        ({"windows": []}, "maintenance.windows"),
        ({"windows": ["Mon 02:00-04:00"], "timezone": "Mars/Olympus"}, "maintenance.timezone"),
        ({"windows": ["Mon 02:00-04:00"], "when": "now"}, "maintenance.when"),
    ],
)
def test_bad_windows_are_refused_naming_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        parse_schedule(spec)
    assert err.value.fields["field"] == field
    assert field in err.value.message


def test_ttl_and_operator_lock_records() -> None:
    assert parse_ttl("90") == 90
    assert parse_ttl("30m") == 1800
    assert parse_ttl("2h") == 7200
    assert parse_ttl(None) is None
    with pytest.raises(AgentInputError, match="--ttl"):
        parse_ttl("soon")
    with pytest.raises(AgentInputError, match="--reason"):
        operator_lock("  ", "ops", None)
    rec = operator_lock("calibration", "ops", 60, now=MON_0300)
    assert rec["expires_at"] == "2026-11-23T03:01:00Z"
    assert active(rec, MON_0300)
    assert not active(rec, MON_0300.replace(minute=2))
    assert active(operator_lock("forever", "ops", None))


def test_the_lock_file_names_the_process_that_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "update.lock"
    assert file_lock_holder(path) is None
    code = (
        "import fcntl, sys, time\n"
        f"f = open({str(path)!r}, 'w'); f.write('firmware flash\\n'); f.flush()\n"
        "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()"
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "held"
        holder = file_lock_holder(path)
        assert holder is not None
        assert f"pid {p.pid}" in holder
        assert "firmware flash" in holder
    finally:
        p.kill()
        p.communicate()
    assert file_lock_holder(path) is None
    with path.open() as f:  # our own shared lock counts too
        fcntl.flock(f, fcntl.LOCK_SH)
        assert file_lock_holder(path) is not None


class _Backend:
    def __init__(self, answer: float) -> None:
        value = answer

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(n) or b"{}")
                out = json.dumps({"answer": value, "echo": body}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *_: Any) -> None:
                return

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.srv.server_address[1])
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()


def test_the_endpoint_forwards_each_request_to_the_backend_current_when_it_arrives() -> None:
    blue, green = _Backend(1.0), _Backend(2.0)
    ep = Endpoint(0, backend=blue.port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{ep.port}") as c:  # one kept-alive connection
            assert c.post("/x", json={"a": 1}).json() == {"answer": 1.0, "echo": {"a": 1}}
            ep.set_backend(green.port)
            assert c.post("/x", json={"a": 2}).json()["answer"] == 2.0
            big = {"blob": "x" * 300_000}
            assert c.post("/x", json=big).json()["echo"] == big
        assert ep.drain(blue.port, timeout=1.0)
        ep.set_backend(None)
        r = httpx.post(f"http://127.0.0.1:{ep.port}/x", json={}, timeout=30)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "agent.no_backend"
    finally:
        ep.close()
        blue.close()
        green.close()


def test_the_agent_writes_and_reads_its_key_as_cryptography_does_without_its_serialization_module() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edgefleet.agent.protocol import key_pem, load_key_pem

    key = Ed25519PrivateKey.generate()
    reference = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert key_pem(key) == reference
    loaded = load_key_pem(reference)
    assert loaded is not None
    assert loaded.private_bytes_raw() == key.private_bytes_raw()
    assert load_key_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n") is None
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, edgefleet.agent.agent; print([m for m in sys.modules if 'serialization.ssh' in m])",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"
