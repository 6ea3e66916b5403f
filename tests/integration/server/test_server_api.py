"""The management and device APIs, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgefleet.server.auth import sign_request
from edgefleet.server.keys import verify_document
from tests.integration.server.conftest import Server, make_bundle

pytestmark = pytest.mark.integration


class Dev:
    """A hand-driven device: a key, an id after enrollment, signed requests."""

    def __init__(self, srv: Server) -> None:
        self.srv = srv
        self.key = Ed25519PrivateKey.generate()
        raw = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.pub = base64.b64encode(raw).decode()
        self.id = ""
        self.server_key = b""

    def enroll(self, token: str, **extra: Any) -> httpx.Response:
        r = self.srv.client.post(
            "/device/v1/enroll", json={"join_token": token, "public_key": self.pub} | extra
        )
        if r.status_code == 201:
            self.id = r.json()["device_id"]
            self.server_key = base64.b64decode(r.json()["server_public_key"])
        return r

    def get(self, target: str, **headers: str) -> httpx.Response:
        h = sign_request(self.key, self.id, "GET", target) | headers
        return self.srv.client.get(target, headers=h)

    def report(self, body: dict[str, Any]) -> httpx.Response:
        raw = json.dumps(body).encode()
        h = sign_request(self.key, self.id, "POST", "/device/v1/report", raw) | {
            "Content-Type": "application/json"
        }
        return self.srv.client.post("/device/v1/report", content=raw, headers=h)


def _error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) >= {"code", "message"}
    if code is not None:
        assert err["code"] == code, err
    return dict(err)


def test_roles_and_project_scope(server: Server) -> None:
    """A viewer can read but not write; a token of another project sees nothing here."""
    r = server.api("POST", "/tokens", json={"name": "ro", "role": "viewer"})
    assert r.status_code == 201
    viewer = r.json()["token"]
    assert server.api("GET", "/devices", token=viewer).status_code == 200
    _error(server.api("POST", "/join-tokens", token=viewer, json={"name": "x"}), 403, "server.forbidden")
    assert server.client.post("/api/v1/projects", json={"id": "other"}, headers=server.h).status_code == 201
    r = server.client.post(
        "/api/v1/projects/other/tokens", json={"name": "o", "role": "admin"}, headers=server.h
    )
    other = r.json()["token"]
    _error(server.api("GET", "/devices", token=other), 403, "server.forbidden")
    _error(server.client.get("/api/v1/projects/default/devices"), 401)
    _error(server.api("GET", "/devices", token="efk_nope_nope"), 401)  # noqa: S106 - a made-up token
    # revoked tokens stop working at once
    tid = r.json()["id"]
    server.client.delete(f"/api/v1/projects/other/tokens/{tid}", headers=server.h)
    _error(
        server.client.get("/api/v1/projects/other/devices", headers={"Authorization": f"Bearer {other}"}), 401
    )


def test_join_token_single_use_expiry_and_labels(server: Server) -> None:
    """A single-use token enrolls one device; labels pass to the device; expired tokens are refused."""
    r = server.api("POST", "/join-tokens", json={"name": "one", "labels": {"site": "lab"}})
    token = r.json()["token"]
    d1 = Dev(server)
    assert d1.enroll(token, labels={"cam": "yes"}).status_code == 201
    _error(Dev(server).enroll(token), 401, "server.bad_join_token")
    r = server.api("GET", f"/devices/{d1.id}")
    assert r.json()["labels"] == {"site": "lab", "cam": "yes"}
    short = server.join_token(ttl_seconds=10)
    server.clock.advance(11)
    err = _error(Dev(server).enroll(short), 401, "server.bad_join_token")
    assert err["fields"]["state"] == "expired"
    _error(
        Dev(server).enroll(server.join_token(), public_key="bm90IGEga2V5"), 400, "server.invalid_public_key"
    )


def test_device_ids_sort_by_enrollment_so_waves_take_the_first_enrolled_first(server: Server) -> None:
    """Device ids are ordered by enrollment time: a rollout's waves (filled in id order) start with
    the devices enrolled first."""
    token = server.join_token(max_uses=3)
    ids = []
    for _ in range(3):
        d = Dev(server)
        assert d.enroll(token).status_code == 201
        ids.append(d.id)
        time.sleep(0.003)  # ids carry milliseconds
    assert ids == sorted(ids)


def test_desired_state_signed_etag_and_long_poll(server: Server) -> None:
    """The document verifies with the server key; a matching ETag gives 304; a change wakes a long-poll."""
    dev = Dev(server)
    dev.enroll(server.join_token())
    r = dev.get("/device/v1/desired-state")
    assert r.status_code == 200
    signed = verify_document(r.json(), dev.server_key)
    assert signed["device"] == dev.id
    assert signed["workloads"] == []
    tag = r.headers["ETag"]
    assert dev.get("/device/v1/desired-state", **{"If-None-Match": tag}).status_code == 304

    result: dict[str, Any] = {}

    def poll() -> None:
        t0 = time.monotonic()
        result["r"] = dev.get("/device/v1/desired-state?wait=20", **{"If-None-Match": tag})
        result["s"] = time.monotonic() - t0

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.5)
    server.upload("det", "1.0.0")
    r = server.api(
        "POST",
        "/deployments",
        json={
            "name": "det",
            "bundle": {"name": "det"},
            "strategy": {"waves": [{"percent": 100}], "bake_seconds": 0},
        },
    )
    assert r.status_code == 201, r.text
    t.join(30)
    assert result["r"].status_code == 200
    assert result["s"] < 10
    doc = verify_document(result["r"].json(), dev.server_key)
    assert doc["workloads"][0]["bundle"]["version"] == "1.0.0"
    assert doc["revision"] > signed["revision"]


def test_signed_requests_reject_bad_signature_skew_replay_and_decommissioned(server: Server) -> None:
    dev = Dev(server)
    dev.enroll(server.join_token())
    _error(server.client.get("/device/v1/desired-state"), 401, "server.unsigned")
    h = sign_request(dev.key, dev.id, "GET", "/device/v1/desired-state")
    assert server.client.get("/device/v1/desired-state", headers=h).status_code == 200
    _error(server.client.get("/device/v1/desired-state", headers=h), 401, "server.replay")
    other = Ed25519PrivateKey.generate()
    _error(
        server.client.get(
            "/device/v1/desired-state", headers=sign_request(other, dev.id, "GET", "/device/v1/desired-state")
        ),
        401,
        "server.bad_signature",
    )
    old = sign_request(dev.key, dev.id, "GET", "/device/v1/desired-state", now=time.time() - 3600)
    _error(server.client.get("/device/v1/desired-state", headers=old), 401, "server.clock_skew")
    # the signature covers the path: a signature for another path does not work here
    h = sign_request(dev.key, dev.id, "GET", "/device/v1/desired-state?wait=0")
    _error(server.client.get("/device/v1/desired-state", headers=h), 401, "server.bad_signature")
    r = server.api("POST", f"/devices/{dev.id}/decommission")
    assert r.json()["status"] == "decommissioned"
    _error(dev.get("/device/v1/desired-state"), 403, "server.decommissioned")


def test_report_is_idempotent_by_sequence(server: Server) -> None:
    dev = Dev(server)
    dev.enroll(server.join_token())
    body = {"seq": 5, "revision": 1, "state": {"x": 1}, "events": [{"kind": "started", "data": {"a": 1}}]}
    assert dev.report(body).json() == {"applied": True, "last_seq": 5}
    assert dev.report(body).json() == {"applied": False, "last_seq": 5}
    assert dev.report(body | {"seq": 4}).json()["applied"] is False
    events = server.api("GET", f"/devices/{dev.id}/events").json()["items"]
    assert [e["kind"] for e in events] == ["started"]
    shown = server.api("GET", f"/devices/{dev.id}").json()
    assert shown["reported"] == {"x": 1, "revision": 1}
    assert shown["reported_revision"] == 1
    _error(dev.report({"seq": 0}), 400, "invalid_input")


def test_bundles_content_addressed_with_range(server: Server) -> None:
    payload = bytes(range(256)) * 40
    b = server.upload("det", "1.0.0", payload)
    again = server.upload("det", "1.0.0", payload)
    assert again["sha256"] == b["sha256"]
    r = server.api("POST", "/bundles", files={"file": ("b", make_bundle("det", "1.0.0", b"different"))})
    _error(r, 409)
    r = server.api("GET", f"/blobs/{b['sha256']}", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes 10-19/{b['size']}"
    assert len(r.content) == 10
    full = server.api("GET", f"/blobs/{b['sha256']}")
    assert full.status_code == 200
    assert full.content[10:20] == r.content
    _error(server.api("GET", f"/blobs/{b['sha256']}", headers={"Range": "bytes=999999-"}), 416)
    _error(server.api("GET", f"/blobs/{'0' * 64}"), 404)
    versions = server.api("GET", "/bundles/det/versions").json()
    assert [v["version"] for v in versions] == ["1.0.0"]


def test_bad_bundles_name_the_problem(server: Server) -> None:
    r = server.api("POST", "/bundles", files={"file": ("b", b"not a tar")})
    assert _error(r, 400, "server.invalid_bundle")["fields"]["field"] == "file"
    bad = make_bundle("det", "1.0.0", manifest={"name": "det", "version": "one", "files": []})
    assert (
        _error(server.api("POST", "/bundles", files={"file": ("b", bad)}), 400)["fields"]["field"]
        == "version"
    )
    lying = make_bundle(
        "det",
        "1.0.0",
        manifest={"name": "det", "version": "1.0.0", "files": [{"path": "model.onnx", "sha256": "0" * 64}]},
    )
    _error(server.api("POST", "/bundles", files={"file": ("b", lying)}), 422, "server.bundle_hash_mismatch")


def test_device_list_filters_and_pages(server: Server) -> None:
    token = server.join_token()
    devs = []
    for i in range(7):
        d = Dev(server)
        d.enroll(token, labels={"zone": "a" if i % 2 else "b"})
        devs.append(d)
    page = server.api("GET", "/devices", params={"limit": 3}).json()
    assert len(page["items"]) == 3
    assert page["next_cursor"]
    seen = [d["id"] for d in page["items"]]
    while page["next_cursor"]:
        page = server.api("GET", "/devices", params={"limit": 3, "cursor": page["next_cursor"]}).json()
        seen += [d["id"] for d in page["items"]]
    assert sorted(seen) == sorted(d.id for d in devs)
    zone_a = server.api("GET", "/devices", params={"selector": "zone=a"}).json()["items"]
    assert len(zone_a) == 3
    assert len(server.api("GET", "/devices", params={"selector": "zone in (a,b),!gpu"}).json()["items"]) == 7
    devs[0].get("/device/v1/desired-state")
    assert server.api("GET", "/devices", params={"status": "new"}).json()["items"]
    err = _error(server.api("GET", "/devices", params={"selector": "=a"}), 400, "server.invalid_selector")
    assert err["fields"]["field"] == "selector"
    _error(server.api("GET", "/devices", params={"cursor": "garbage"}), 400)
    _error(server.api("GET", "/devices", params={"limit": 0}), 400, "invalid_input")


def test_relabel_moves_device_in_and_out_of_deployments(server: Server) -> None:
    server.upload("det", "1.0.0")
    dev = Dev(server)
    dev.enroll(server.join_token())
    r = server.api(
        "POST",
        "/deployments",
        json={
            "name": "det",
            "bundle": {"name": "det"},
            "selector": "cam=yes",
            "strategy": {"waves": [{"percent": 100}], "bake_seconds": 0},
        },
    )
    assert r.status_code == 201
    server.tick()
    assert verify_document(dev.get("/device/v1/desired-state").json(), dev.server_key)["workloads"] == []
    server.api("PUT", f"/devices/{dev.id}/labels", json={"labels": {"cam": "yes"}})
    doc = verify_document(dev.get("/device/v1/desired-state").json(), dev.server_key)
    assert [w["deployment"] for w in doc["workloads"]] == ["det"]
    err = _error(server.api("PUT", f"/devices/{dev.id}/labels", json={"labels": {"bad key!": "x"}}), 400)
    assert err["fields"]["field"] == "labels.bad key!"


def test_audit_log_records_mutations(server: Server) -> None:
    server.join_token()
    server.api("POST", "/join-tokens", json={"name": ""})
    items = server.api("GET", "/audit").json()["items"]
    assert [(i["method"], i["status"]) for i in items[:2]] == [("POST", 400), ("POST", 201)]
    assert items[0]["actor"].startswith("token:")


def test_errors_have_one_shape(server: Server) -> None:
    _error(server.client.get("/api/v1/nope"), 404, "http.404")
    _error(server.api("POST", "/deployments", json={"name": "x", "bundle": {"name": "none"}}), 404)
    err = _error(server.api("POST", "/deployments", json={"name": "x", "bundle": {}}), 400, "invalid_input")
    assert err["fields"]["field"] == "bundle.name"
    _error(
        server.client.post("/device/v1/enroll", content=b"{", headers={"Content-Type": "application/json"}),
        400,
    )


def test_metrics_and_openapi(server: Server) -> None:
    dev = Dev(server)
    dev.enroll(server.join_token())
    dev.get("/device/v1/desired-state")
    text = server.client.get("/metrics").text
    assert 'edgefleet_server_devices{status="new"} 1.0' in text
    assert "edgefleet_server_request_duration_seconds_bucket" in text
    assert 'route="/device/v1/desired-state"' in text
    spec = server.client.get("/openapi.json").json()
    assert "/api/v1/projects/{project}/rollouts/{rollout_id}/{action}" in spec["paths"]
    assert "/device/v1/desired-state" in spec["paths"]
