"""Device impersonation, replays, revoked devices, blob path traversal, and token-guess rate limiting."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.security.conftest import SecServer, full, make_server, record

pytestmark = pytest.mark.integration


def _get(srv: SecServer, target: str, headers: dict[str, str]) -> httpx.Response:
    return srv.client.get(target, headers=headers)


def test_a_device_cannot_act_as_another_replay_or_outlive_its_revocation(sec_server: SecServer) -> None:
    a, b = sec_server.enroll("default"), sec_server.enroll("default")
    target = "/device/v1/desired-state"
    outcomes: dict[str, int] = {}

    def refused(name: str, r: httpx.Response, status: int, code: str) -> None:
        assert r.status_code == status, (name, r.status_code, r.text)
        assert r.json()["error"]["code"] == code, (name, r.text)
        outcomes[name] = outcomes.get(name, 0) + 1

    assert _get(sec_server, target, a.signed("GET", target)).status_code == 200
    # a's key, b's id: the signature does not verify against b's key
    refused(
        "other_device_id",
        _get(sec_server, target, a.signed("GET", target, as_device=b.id)),
        401,
        "server.bad_signature",
    )
    # an unknown device id
    refused(
        "unknown_device",
        _get(sec_server, target, a.signed("GET", target, as_device="dev_ffffffffffffffff")),
        401,
        "server.unknown_device",
    )
    # the same signed request twice: the second is a replay
    h = a.signed("GET", target)
    assert _get(sec_server, target, h).status_code == 200
    refused("replay", _get(sec_server, target, h), 401, "server.replay")
    # a signature for another path, method or body does not carry over
    refused(
        "other_path",
        _get(sec_server, target + "?wait=1", a.signed("GET", target)),
        401,
        "server.bad_signature",
    )
    body = json.dumps({"seq": 1, "events": []}).encode()
    h = a.signed("POST", "/device/v1/report", body)
    r = sec_server.client.post(
        "/device/v1/report",
        content=body.replace(b"1", b"2"),
        headers=h | {"Content-Type": "application/json"},
    )
    refused("tampered_body", r, 401, "server.bad_signature")
    # no signature at all
    refused("unsigned", _get(sec_server, target, {}), 401, "server.unsigned")
    # revoked (decommissioned) device: refused from its next call on, whatever it asks
    r = sec_server.call("POST", f"/api/v1/projects/default/devices/{b.id}/decommission", sec_server.admin)
    assert r.status_code == 200, r.text
    refused("revoked_poll", _get(sec_server, target, b.signed("GET", target)), 403, "server.decommissioned")
    rb = json.dumps({"seq": 5, "events": []}).encode()
    r = sec_server.client.post(
        "/device/v1/report",
        content=rb,
        headers=b.signed("POST", "/device/v1/report", rb) | {"Content-Type": "application/json"},
    )
    refused("revoked_report", r, 403, "server.decommissioned")
    # a request signed long ago (captured, then replayed later)
    old = a.signed("GET", target)
    sec_server.clock.advance(3600)
    refused("stale_timestamp", _get(sec_server, target, old), 401, "server.clock_skew")
    record(
        "device-impersonation",
        trials=sum(outcomes.values()),
        outcomes={f"{name}: refused": n for name, n in outcomes.items()},
        notes="signed device requests: other id, unknown id, replay, other path, "
        "tampered body, stale timestamp, unsigned, decommissioned device; none accepted",
    )


TRAVERSALS = [
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2E%2E%2F%2E%2E%2Fserver.db",
    "..%252F..%252Fserver.db",
    "%2Fetc%2Fpasswd",
    "..",
    "....%2F%2F....%2F%2Fetc%2Fpasswd",
    "%00" + "0" * 63,
    "0" * 63 + "%2F",
    "A" * 64,
    "../" * 10 + "etc/passwd",
]


def test_blob_apis_refuse_path_traversal(sec_server: SecServer) -> None:
    """Names that are not a sha256 of a blob of the caller's project never reach the file system."""
    dev = sec_server.enroll("default")
    bundle = sec_server.upload("default", "m", "1.0.0")
    secret = (sec_server.settings.data_dir / "server.db").read_bytes()[:64]
    statuses: dict[str, int] = {}
    for raw in TRAVERSALS:
        for base, signed in (("/api/v1/projects/default/blobs/", False), ("/device/v1/blobs/", True)):
            target = base + raw
            headers = dev.signed("GET", target) if signed else {"Authorization": f"Bearer {sec_server.admin}"}
            r = sec_server.client.get(target, headers=headers)
            if r.status_code == 307:  # a trailing slash: redirected to the same name without it
                assert r.headers["location"].endswith(base + raw.removesuffix("%2F")), r.headers
            else:
                assert r.status_code in (400, 401, 404), (target, r.status_code, r.text[:200])
            assert secret not in r.content
            assert b"root:" not in r.content
            statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
    # the real blob still downloads, whole and by range
    ok = f"/device/v1/blobs/{bundle['sha256']}"
    r = sec_server.client.get(ok, headers=dev.signed("GET", ok) | {"Range": "bytes=0-9"})
    assert r.status_code == 206
    assert len(r.content) == 10
    record(
        "blob-path-traversal",
        trials=sum(statuses.values()),
        outcomes={f"refused with HTTP {k}": v for k, v in statuses.items()},
        notes="encoded, double-encoded, absolute and dot-dot blob names on both blob APIs; no file served",
    )


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[SecServer]:
    yield from make_server(tmp_path, auth_failure_limit=5, auth_failure_window_seconds=60)


def test_token_guesses_are_rate_limited_per_address(limited: SecServer) -> None:
    """After 5 failures in 60 s an address gets 429 + Retry-After, even with a valid token, until the
    window passes; the counts are in /metrics."""
    guesses = 200 if full() else 20
    valid = limited.tokens[("default", "viewer")]
    codes: dict[str, int] = {}
    t0 = time.monotonic()
    for i in range(guesses):
        r = limited.call("GET", "/api/v1/whoami", f"efk_{i:016x}_guess")
        codes[str(r.status_code)] = codes.get(str(r.status_code), 0) + 1
        if i < 5:
            assert r.status_code == 401, r.text
        else:
            assert r.status_code == 429, r.text
            assert r.json()["error"]["code"] == "server.too_many_failures"
            assert 1 <= int(r.headers["Retry-After"]) <= 60
    elapsed = time.monotonic() - t0
    r = limited.call("GET", "/api/v1/whoami", valid)
    assert r.status_code == 429  # the guesser learns nothing, not even with a right guess
    # join tokens: the same limiter, its own count
    for i in range(7):
        r = limited.client.post(
            "/device/v1/enroll", json={"join_token": f"efj_{i:016x}_x", "public_key": "A" * 43 + "="}
        )
        assert r.status_code == 429, r.text  # one limit per address: already blocked
    metrics = limited.client.get("/metrics").text
    assert 'edgefleet_server_auth_failures_total{kind="api_token"} 5.0' in metrics
    assert 'edgefleet_server_auth_rate_limited_total{kind="api_token"}' in metrics
    assert 'edgefleet_server_auth_rate_limited_total{kind="join_token"} 7.0' in metrics
    limited.clock.advance(61)
    assert limited.call("GET", "/api/v1/whoami", valid).status_code == 200
    record(
        "token-guess-rate-limit",
        trials=guesses,
        outcomes={f"HTTP {k}": v for k, v in codes.items()},
        notes=f"API-token guesses from one address, limit 5 per 60 s; {guesses / elapsed:.0f} guesses/s; "
        "join-token guesses share the limit; a valid token works again once the window passes",
    )


def test_join_token_guesses_are_limited_and_successes_are_not_counted(limited: SecServer) -> None:
    for _ in range(3):  # good enrollments never count
        limited.enroll("default")
    join = limited.join("default")
    for i in range(5):
        r = limited.client.post(
            "/device/v1/enroll", json={"join_token": f"efj_{i:016x}_x", "public_key": "A" * 43 + "="}
        )
        assert r.status_code == 401, r.text
        assert r.json()["error"]["code"] == "server.bad_join_token"
    r = limited.client.post("/device/v1/enroll", json={"join_token": join, "public_key": "B" * 43 + "="})
    assert r.status_code == 429
    assert "Retry-After" in r.headers
