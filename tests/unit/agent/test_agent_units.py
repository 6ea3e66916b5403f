"""The agent's small parts: the protocol matches the server byte for byte, the outbox, atomic files."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgefleet.agent.errors import AgentVerificationError
from edgefleet.agent.fsio import atomic_write_json, read_json
from edgefleet.agent.outbox import Outbox
from edgefleet.agent.protocol import canonical_json, sign_request, verify_document
from edgefleet.agent.sdnotify import notify

pytestmark = pytest.mark.unit


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_agent_signed_requests_verify_on_the_server() -> None:
    import time

    from edgefleet.server.auth import NonceCache, verify_request

    key = Ed25519PrivateKey.generate()
    body = b'{"seq": 1}'
    headers = sign_request(key, "dev_x", "POST", "/device/v1/report?x=1", body)
    dev = verify_request(
        headers,
        "POST",
        "/device/v1/report?x=1",
        body,
        public_key_for=lambda _d: _raw(key),
        nonces=NonceCache(),
        now=time.time(),
    )
    assert dev == "dev_x"


def test_agent_verifies_server_documents_and_refuses_tampering() -> None:
    from edgefleet.server.keys import ServerKey

    sk = ServerKey(Ed25519PrivateKey.generate())
    env = sk.sign_document({"device": "dev_x", "revision": 3, "workloads": [], "note": "é"})
    raw = base64_raw(sk)
    assert verify_document(env, raw)["revision"] == 3
    env["signed"]["revision"] = 4
    with pytest.raises(AgentVerificationError):
        verify_document(env, raw)
    with pytest.raises(AgentVerificationError):
        verify_document({"signed": None}, raw)
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


def base64_raw(sk: object) -> bytes:
    import base64

    return base64.b64decode(sk.public_b64)  # type: ignore[attr-defined]


def test_agent_outbox_is_bounded_drops_oldest_and_survives_restart(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.json", capacity=3)
    for i in range(5):
        box.put("e", i=i)
    assert [e["data"]["i"] for e in box.peek()] == [2, 3, 4]
    assert box.dropped == 2
    again = Outbox(tmp_path / "o.json", capacity=3)
    assert len(again) == 3
    assert again.dropped == 2
    again.ack(2)
    assert [e["data"]["i"] for e in Outbox(tmp_path / "o.json").peek()] == [4]


def test_agent_atomic_json_mode_and_no_temp_left(tmp_path: Path) -> None:
    p = tmp_path / "d" / "state.json"
    atomic_write_json(p, {"a": 1})
    atomic_write_json(p, {"a": 2})
    assert read_json(p) == {"a": 2}
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert [x.name for x in p.parent.iterdir()] == ["state.json"]
    assert read_json(tmp_path / "missing.json", {"x": 0}) == {"x": 0}


def test_agent_sd_notify_sends_a_datagram(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(path))
        assert notify("READY=1", env={"NOTIFY_SOCKET": str(path)})
        assert s.recv(100) == b"READY=1"
    assert not notify("READY=1", env={})


def test_agent_cli_status_without_an_agent_is_a_clear_error(tmp_path: Path) -> None:
    from edgefleet.agent.__main__ import main

    assert main(["status", "--state-dir", str(tmp_path)]) != 0


def test_agent_systemd_unit_has_watchdog_and_hardening() -> None:
    text = (Path(__file__).resolve().parents[3] / "deploy/systemd/edgefleet-agent.service").read_text()
    lines = {
        ln.split("=", 1)[0]: ln.split("=", 1)[1]
        for ln in text.splitlines()
        if "=" in ln and not ln.startswith("#")
    }
    assert lines["Type"] == "notify"
    assert int(lines["WatchdogSec"]) > 0
    assert lines["KillMode"] == "process"  # workloads outlive an agent restart
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
    }.items():
        assert lines[key] == value, key
    assert "-m edgefleet.agent run" in lines["ExecStart"]
