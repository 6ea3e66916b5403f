"""No secret in any log: tokens and private keys never appear in what the server, the agent and
the workload write, through an enroll / deploy / update flow with a refused enrollment on the way.

The one exception by design: the first start prints the administrator token once (it is shown
once and stored hashed); that line is allowed, any other occurrence is not.
"""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.integration.agent.conftest import PY, AgentProc, Fleet, make_bundle, new_agent, serving
from tests.integration.security.conftest import record

pytestmark = pytest.mark.integration


def _pem_body(path: Path) -> list[str]:
    """The base64 lines of a PEM file (each long enough to be unmistakable)."""
    return [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("-----") and len(ln) >= 16]


def _raw_ed25519(path: Path) -> list[str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return [
        raw.hex(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    ]


def _secret_part(token: str) -> str:
    return token.split("_", 2)[2]  # efk_<id>_<secret>: the id may be logged, the secret never


def test_no_token_or_key_appears_in_any_log(tmp_path: Path, fleet: Fleet, agents: list[AgentProc]) -> None:
    fleet.upload(make_bundle(tmp_path, "det", "1.0.0"))
    fleet.upload(make_bundle(tmp_path, "det", "2.0.0", scale=3.0))
    with fleet.api() as api:
        r = api.post("/tokens", json={"name": "ci", "role": "operator"})
        assert r.status_code == 201, r.text
        operator_token = r.json()["token"]
        assert api.get("/devices", headers={"Authorization": f"Bearer {operator_token}"}).status_code == 200
    # a device with a join token the server does not know: refused, and the token is not echoed
    wrong_join = "efj_" + "0" * 16 + "_" + "Z" * 32
    bad = new_agent(tmp_path, fleet, agents, join=wrong_join)
    bad.start("--log-level", "debug")
    assert bad.p is not None
    assert bad.p.wait(timeout=120) != 0
    assert "bad_join_token" in bad.log.read_text()

    join = fleet.join_token()
    a = new_agent(tmp_path, fleet, agents, join=join)
    a.start("--log-level", "debug")
    fleet.deploy("det", "1.0.0")
    a.wait(lambda s: serving(s, "det", "1.0.0"), 120, "1.0.0 serving")
    fleet.deploy("det", "2.0.0")
    a.wait(lambda s: serving(s, "det", "2.0.0"), 120, "2.0.0 serving")
    # a wrong API token and the operator CLI with a right one
    httpx.get(
        fleet.server.url + "/api/v1/whoami",
        headers={"Authorization": "Bearer efk_x_y"},
        verify=fleet.server.verify(),
    )
    cli = subprocess.run(
        [
            PY,
            "-m",
            "edgefleet",
            "device",
            "ls",
            "--server",
            fleet.server.url,
            "--token",
            operator_token,
            "--ca-cert",
            str(fleet.server.ca),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    fleet.server.stop()  # flush everything the server would write

    data = fleet.server.data
    secrets_: dict[str, list[str]] = {
        "admin token": [fleet.token, _secret_part(fleet.token)],
        "operator token": [operator_token, _secret_part(operator_token)],
        "join token": [join, _secret_part(join)],
        "refused join token": [wrong_join],
        "device key": _pem_body(a.state / "key.pem") + _raw_ed25519(a.state / "key.pem"),
        "server signing key": _pem_body(data / "server-key.pem") + _raw_ed25519(data / "server-key.pem"),
        "TLS CA key": _pem_body(data / "tls" / "ca-key.pem"),
        "TLS server key": _pem_body(data / "tls" / "server-key.pem"),
    }
    logs = [fleet.server.log, a.log, bad.log]
    logs += [
        p for p in a.state.rglob("*") if p.is_file() and re.search(r"(log|stderr|stdout|out|err)", p.name)
    ]
    assert any(p.name == "output.log" for p in logs), logs  # the workloads' own output is scanned too
    text = {p: p.read_text(errors="replace") + "\n" + cli.stdout + cli.stderr for p in logs}
    found: list[str] = []
    scanned = 0
    for what, needles in secrets_.items():
        for needle in needles:
            assert len(needle) >= 16, (what, needle)
            for path, body in text.items():
                scanned += 1
                n = body.count(needle)
                if what == "admin token" and path == fleet.server.log:
                    n -= 1  # the first start's one-time display
                if n > 0:
                    found.append(f"{what} in {path.name} ({n}x)")
    banner = [ln for ln in fleet.server.log.read_text().splitlines() if fleet.token in ln]
    assert banner == [fleet.token], banner  # shown once, alone on its line
    record(
        "secrets-in-logs",
        trials=scanned,
        outcomes={"leaks": len(found), "clean": scanned - len(found)},
        notes=f"{len(logs)} logs (server, agents, workload) scanned for {len(secrets_)} kinds of "
        "secret after enroll, refused enroll, deploy, update, CLI and a wrong API token",
    )
    assert not found, found
