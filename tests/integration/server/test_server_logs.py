"""Device logs on SQLite and PostgreSQL: batches in, repeats ignored, bad input named, retention, reads."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import httpx
import pytest

from edgefleet.server.api.app import _compact
from edgefleet.server.auth import sign_request
from tests.integration.server.conftest import Server
from tests.integration.server.test_server_api import Dev, _error

pytestmark = pytest.mark.integration


def _line(msg: str, *, ts: float | None = None, workload: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "ts": ts if ts is not None else time.time(),
        "source": "workload" if workload else "agent",
        "workload": workload,
        "level": "info",
        "msg": msg,
    } | extra


def _body(lines: list[dict[str, Any]]) -> bytes:
    return gzip.compress("".join(json.dumps(x) + "\n" for x in lines).encode())


def send(dev: Dev, batch: int, raw: bytes, *, now: float | None = None) -> httpx.Response:
    target = f"/device/v1/logs?batch={batch}"
    h = sign_request(dev.key, dev.id, "POST", target, raw, now=now) | {
        "Content-Type": "application/x-ndjson",
        "Content-Encoding": "gzip",
    }
    return dev.srv.client.post(target, content=raw, headers=h)


def enrolled(server: Server) -> Dev:
    dev = Dev(server)
    assert dev.enroll(server.join_token()).status_code == 201
    return dev


def test_log_batches_are_stored_once_and_read_back(server: Server) -> None:
    """Lines come back oldest first; a repeated batch number stores nothing; filters and follow work."""
    dev = enrolled(server)
    t0 = time.time() - 60
    first = [_line(f"agent {i}", ts=t0 + i) for i in range(3)] + [
        _line("det says hi", ts=t0 + 3, workload="det")
    ]
    r = send(dev, 10, _body(first))
    assert r.status_code == 200, r.text
    assert r.json() == {"stored": True, "lines": 4, "batch": 10}
    assert send(dev, 10, _body(first)).json()["stored"] is False  # the answer was lost: a retry
    assert send(dev, 9, _body(first)).json()["stored"] is False  # an older number: a repeat too

    page = server.api("GET", f"/devices/{dev.id}/logs").json()
    assert [x["message"] for x in page["items"]] == ["agent 0", "agent 1", "agent 2", "det says hi"]
    assert page["items"][3]["workload"] == "det"
    assert page["items"][3]["source"] == "workload"
    cursor = page["cursor"]

    tail = server.api("GET", f"/devices/{dev.id}/logs", params={"limit": 2}).json()["items"]
    assert [x["message"] for x in tail] == ["agent 2", "det says hi"]
    det = server.api("GET", f"/devices/{dev.id}/logs", params={"workload": "det"}).json()["items"]
    assert [x["message"] for x in det] == ["det says hi"]
    since = server.api("GET", f"/devices/{dev.id}/logs", params={"since": _iso(t0 + 1.5)}).json()["items"]
    assert [x["message"] for x in since] == ["agent 2", "det says hi"]

    # following: only what arrived after the cursor
    assert server.api("GET", f"/devices/{dev.id}/logs", params={"after": cursor}).json()["items"] == []
    assert send(dev, 11, _body([_line("later")])).json()["stored"] is True
    new = server.api("GET", f"/devices/{dev.id}/logs", params={"after": cursor}).json()
    assert [x["message"] for x in new["items"]] == ["later"]
    assert new["cursor"] > cursor
    # a filter that matches nothing still moves the cursor past the newest line
    none = server.api("GET", f"/devices/{dev.id}/logs", params={"workload": "nope"}).json()
    assert none == {"items": [], "cursor": new["cursor"]}


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


def test_bad_log_batches_name_the_problem_and_store_nothing(server: Server) -> None:
    dev = enrolled(server)
    err = _error(send(dev, 1, b"not gzip at all"), 400)
    assert "not gzip" in err["message"]
    err = _error(send(dev, 2, _body([_line("ok"), {"ts": time.time(), "source": "kernel", "msg": "x"}])), 400)
    assert "line 2: source" in err["message"], err
    err = _error(send(dev, 3, gzip.compress(b'{"ts": "yesterday", "source": "agent", "msg": "x"}\n')), 400)
    assert "line 1: ts" in err["message"]
    err = _error(send(dev, 4, gzip.compress(b"[1, 2]\n")), 400)
    assert "JSON object" in err["message"]
    big = gzip.compress(b"x" * (server.ctx.settings.max_log_batch_bytes + 1))
    _error(send(dev, 5, big), 413)  # a gzip bomb is stopped at the limit
    _error(send(dev, 0, _body([_line("x")])), 400)  # batch numbers start at 1
    unsigned = server.client.post("/device/v1/logs?batch=6", content=_body([_line("x")]))
    _error(unsigned, 401)
    assert server.api("GET", f"/devices/{dev.id}/logs").json()["items"] == []
    # nothing was claimed by the refused batches: batch 2 can still be sent
    assert send(dev, 2, _body([_line("fine")])).json()["stored"] is True


def test_device_logs_api_checks_roles_devices_and_input(server: Server) -> None:
    dev = enrolled(server)
    send(dev, 1, _body([_line("secret-ish")]))
    viewer = server.api("POST", "/tokens", json={"name": "ro", "role": "viewer"}).json()["token"]
    assert server.api("GET", f"/devices/{dev.id}/logs", token=viewer).status_code == 200
    assert server.client.post("/api/v1/projects", json={"id": "other"}, headers=server.h).status_code == 201
    other = server.client.post(
        "/api/v1/projects/other/tokens", json={"name": "o", "role": "admin"}, headers=server.h
    ).json()["token"]
    _error(server.api("GET", f"/devices/{dev.id}/logs", token=other), 403, "server.forbidden")
    r = server.client.get(
        f"/api/v1/projects/other/devices/{dev.id}/logs", headers={"Authorization": f"Bearer {other}"}
    )
    _error(r, 404)  # the device is not in that project
    err = _error(server.api("GET", "/devices/dev_0000000000000000/logs"), 404)
    assert "dev_0000000000000000" in err["message"]
    err = _error(server.api("GET", f"/devices/{dev.id}/logs", params={"since": "last tuesday"}), 400)
    assert err["fields"]["field"] == "since"
    _error(server.api("GET", f"/devices/{dev.id}/logs", params={"limit": 0}), 400)
    _error(server.client.get(f"/api/v1/projects/default/devices/{dev.id}/logs"), 401)


def test_log_retention_by_lines_per_device_and_by_age(server: Server) -> None:
    """The newest max_log_lines_per_device lines stay at every batch; old lines go at compaction."""
    limit = server.ctx.settings.max_log_lines_per_device
    server.ctx.settings = server.ctx.settings.model_copy(update={"max_log_lines_per_device": 50})
    try:
        dev = enrolled(server)
        keep = enrolled(server)
        for b in range(1, 5):
            lines = [_line(f"b{b} l{i}") for i in range(20)]
            assert send(dev, b, _body(lines)).json()["stored"] is True
        items = server.api("GET", f"/devices/{dev.id}/logs", params={"limit": 1000}).json()["items"]
        assert len(items) == 50
        assert items[0]["message"] == "b2 l10"
        assert items[-1]["message"] == "b4 l19"
        send(keep, 1, _body([_line("other device")]))

        # eight days later (log_retention_days is 7) the compaction removes every line from then
        server.clock.advance(8 * 86400)
        assert send(keep, 2, _body([_line("fresh")]), now=server.clock()).json()["stored"] is True
        _compact(server.ctx)
        assert server.api("GET", f"/devices/{dev.id}/logs").json()["items"] == []
        left = server.api("GET", f"/devices/{keep.id}/logs").json()["items"]
        assert [x["message"] for x in left] == ["fresh"]
    finally:
        server.ctx.settings = server.ctx.settings.model_copy(update={"max_log_lines_per_device": limit})
