"""The agent over HTTPS: the server's CA pinned at enrollment (file or fingerprint), other CAs refused.

A real `edgefleet server run` (TLS by default); the agent's client and trust logic in this process.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgefleet.agent.agent import Agent
from edgefleet.agent.client import DeviceClient
from edgefleet.agent.config import AgentConfig
from edgefleet.agent.errors import AgentInputError, AgentVerificationError
from edgefleet.agent.tls import fetch_ca, normalize_fingerprint, pem_fingerprint
from edgefleet.server.tls import ensure_auto_tls
from tests.integration.agent.conftest import Fleet

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    f = Fleet(tmp_path_factory.mktemp("tls"))
    try:
        yield f
    finally:
        f.server.stop()


def _enroll_body(join: str) -> bytes:
    raw = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return json.dumps({"join_token": join, "public_key": base64.b64encode(raw).decode()}).encode()


def test_the_server_speaks_https_by_default_and_the_pinned_ca_verifies_it(tls_fleet: Fleet) -> None:
    ca = tls_fleet.server.ca.read_bytes()
    assert tls_fleet.server.url.startswith("https://")
    assert pem_fingerprint(ca) == tls_fleet.server.fingerprint
    client = DeviceClient(tls_fleet.server.url, ca_pem=ca)
    out = client.request("POST", "/device/v1/enroll", _enroll_body(tls_fleet.join_token()), signed=False)
    assert out.status == 201
    assert out.json()["device_id"]


def test_fingerprint_fetches_the_ca_once_and_refuses_another(tls_fleet: Fleet) -> None:
    """Trust on first use: the CA the server offers is kept only when its SHA-256 is the printed one."""
    fp = tls_fleet.server.fingerprint
    assert fetch_ca(tls_fleet.server.url, fp) == tls_fleet.server.ca.read_bytes().strip() + b"\n"
    wrong = normalize_fingerprint("00" * 32)
    with pytest.raises(AgentVerificationError) as e:
        fetch_ca(tls_fleet.server.url, wrong)
    assert e.value.code == "agent.tls_untrusted"
    assert fp in e.value.message
    assert wrong in e.value.message


def test_a_certificate_of_another_ca_is_refused_with_a_clear_error(tls_fleet: Fleet, tmp_path: Path) -> None:
    other = ensure_auto_tls(tmp_path / "other")
    assert other.ca is not None
    pinned = other.ca.read_bytes()
    for client in (DeviceClient(tls_fleet.server.url, ca_pem=pinned), DeviceClient(tls_fleet.server.url)):
        with pytest.raises(AgentVerificationError) as e:
            client.request("GET", "/device/v1/ca.pem", signed=False)
        assert e.value.code == "agent.tls_untrusted"
        assert "refusing" in e.value.message
    with pytest.raises(AgentVerificationError) as e:
        DeviceClient(tls_fleet.server.url, ca_pem=pinned).request("GET", "/healthz", signed=False)
    assert pem_fingerprint(pinned) in e.value.message  # names the pinned CA


def test_agent_pins_at_enrollment_and_checks_the_pin_later(tls_fleet: Fleet, tmp_path: Path) -> None:
    state = tmp_path / "agent"
    fp = tls_fleet.server.fingerprint
    agent = Agent(AgentConfig(state_dir=state, server=tls_fleet.server.url, ca_fingerprint=fp.lower()))
    assert agent._trust(tls_fleet.server.url) == tls_fleet.server.ca.read_bytes().strip() + b"\n"
    assert pem_fingerprint((state / "server-ca.pem").read_bytes()) == fp
    # later starts use the stored pin without asking the server; a different fingerprint is refused
    again = Agent(AgentConfig(state_dir=state, server=tls_fleet.server.url))
    assert pem_fingerprint(again._trust(tls_fleet.server.url) or b"") == fp
    wrong = Agent(AgentConfig(state_dir=state, server=tls_fleet.server.url, ca_fingerprint="ab" * 32))
    with pytest.raises(AgentVerificationError, match="not --ca-fingerprint"):
        wrong._trust(tls_fleet.server.url)
    # pinning flags on a plain-HTTP URL, and a malformed fingerprint, are input errors
    plain = Agent(AgentConfig(state_dir=tmp_path / "p", server="http://127.0.0.1:1", ca_file=tmp_path / "x"))
    with pytest.raises(AgentInputError, match="need an https server"):
        plain._trust("http://127.0.0.1:1")
    with pytest.raises(AgentInputError, match="64 hex digits"):
        normalize_fingerprint("abc")
