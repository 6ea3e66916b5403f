"""TUF on the device: the server hosts a TUF repository of its bundles, the agent verifies with it."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.agent.conftest import (
    AgentProc,
    Fleet,
    infer,
    make_bundle,
    new_agent,
    serving,
    workload_of,
)

pytestmark = pytest.mark.integration


def _refused(a: AgentProc, fleet: Fleet, dev: str, version: str, code: str) -> dict[str, Any]:
    """Deploy ``version``, expect the agent to refuse it with ``code``, still serving 1.0.0."""
    fleet.deploy("det", version)
    st = a.wait(
        lambda s: s["failed"].get("det", {}).get("reason", "").find(code) >= 0, 90, f"{version} refused"
    )
    failed = st["failed"]["det"]
    assert failed["kind"] == "refused", failed
    assert serving(st, "det", "1.0.0"), st
    assert infer(workload_of(st, "det")["endpoint"]) == [2.0] * 4  # type: ignore[index]
    a.wait(lambda s: s["outbox"]["queued"] == 0, 30, "reported")
    refusals = [e for e in fleet.events(dev) if e["kind"] == "update_refused" and code in e["data"]["reason"]]
    assert refusals, fleet.events(dev)
    health = fleet.device(dev)["health"]["workloads"]
    assert any(w["status"] == "failed" and code in w.get("reason", "") for w in health), health
    return failed


def _resign_timestamp(fleet: Fleet, mutate: Any) -> None:
    """Write timestamp.json again, signed by the real online timestamp key, after ``mutate``."""
    from tuf.api.metadata import Metadata
    from tuf.api.serialization.json import JSONSerializer

    from edgefleet.bundle.keys import KeyStore

    assert fleet.keys is not None
    signer = KeyStore(fleet.keys).signers("timestamp", None)[0]
    path = fleet.server.data / "tuf" / "default" / "metadata" / "timestamp.json"
    md = Metadata.from_bytes(path.read_bytes())
    mutate(md.signed)
    md.signatures.clear()
    md.sign(signer)
    path.write_bytes(md.to_bytes(JSONSerializer(compact=False)))


def test_agent_verifies_every_bundle_with_tuf_and_refuses_tampering(
    tmp_path: Path, tuf_fleet: Fleet, agents: list[AgentProc]
) -> None:
    fleet = tuf_fleet
    meta = fleet.server.data / "tuf" / "default" / "metadata"
    fleet.upload(make_bundle(tmp_path, "det", "1.0.0"))
    assert (meta / "timestamp.json").is_file()  # the server signed targets, snapshot, timestamp
    old_timestamp = (meta / "timestamp.json").read_bytes()
    a = new_agent(tmp_path, fleet, agents)
    a.start()
    dev = a.wait(lambda s: s["polls"] > 0, 60, "enrollment")["device_id"]
    trust = json.loads((a.state / "identity.json").read_text())["trust"]
    assert trust["kind"] == "tuf"
    assert json.loads(trust["tuf_root"])["signed"]["_type"] == "root"  # the root, from enrollment

    fleet.deploy("det", "1.0.0")
    st = a.wait(lambda s: serving(s, "det", "1.0.0"), 90, "1.0.0 serving")
    assert infer(workload_of(st, "det")["endpoint"]) == [2.0] * 4  # type: ignore[index]
    assert (a.state / "tuf" / "metadata" / "timestamp.json").is_file()  # trusted metadata persisted
    a.wait(lambda s: s["outbox"]["queued"] == 0, 30, "reported")
    verified = [e for e in fleet.events(dev) if e["kind"] == "bundle_verified"]
    assert verified, fleet.events(dev)
    assert verified[0]["data"]["target"] == "det-1.0.0.tar", verified

    # 1. tampered metadata: the targets file changes on the server's disk (its signature breaks)
    fleet.upload(make_bundle(tmp_path, "det", "2.0.0", scale=3.0))
    newest = max(meta.glob("*.targets.json"), key=lambda p: int(p.name.split(".")[0]))
    doc = json.loads(newest.read_bytes())
    doc["signed"]["targets"]["det-2.0.0.tar"]["length"] += 1
    newest.write_text(json.dumps(doc))
    _refused(a, fleet, dev, "2.0.0", "bundle.bad_signature")

    # 2. expired metadata: a timestamp properly signed but past its expiry (a freeze attack)
    fleet.upload(make_bundle(tmp_path, "det", "3.0.0", scale=4.0))

    def expire(ts: Any) -> None:
        ts.version += 1
        ts.expires = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)

    _resign_timestamp(fleet, expire)
    _refused(a, fleet, dev, "3.0.0", "bundle.expired")

    # 3. rollback: an older timestamp than the one the device already trusts (a replay)
    fleet.upload(make_bundle(tmp_path, "det", "4.0.0", scale=5.0))
    current = (meta / "timestamp.json").read_bytes()
    (meta / "timestamp.json").write_bytes(old_timestamp)
    _refused(a, fleet, dev, "4.0.0", "bundle.rollback")
    (meta / "timestamp.json").write_bytes(current)

    # 4. tampered target bytes: the stored bundle changes behind the server's back
    tar = make_bundle(tmp_path, "det", "5.0.0", scale=6.0)
    fleet.upload(tar)
    digest = hashlib.sha256(tar.read_bytes()).hexdigest()
    blob = fleet.server.data / "blobs" / digest[:2] / digest
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    _refused(a, fleet, dev, "5.0.0", "hash_mismatch")

    # and a good release after all that still goes through, verified
    fleet.upload(make_bundle(tmp_path, "det", "6.0.0", scale=7.0))
    fleet.deploy("det", "6.0.0")
    st = a.wait(lambda s: serving(s, "det", "6.0.0"), 120, "6.0.0 serving")
    assert infer(workload_of(st, "det")["endpoint"]) == [7.0] * 4  # type: ignore[index]


def test_tuf_server_refuses_an_upload_whose_targets_metadata_is_not_signed_by_the_targets_key(
    tmp_path: Path, tuf_fleet: Fleet
) -> None:
    tar = make_bundle(tmp_path, "det", "1.0.0")
    forged = {
        "signed": {
            "_type": "targets",
            "spec_version": "1.0.31",
            "version": 9,
            "expires": "2099-01-01T00:00:00Z",
            "targets": {
                "det-1.0.0.tar": {
                    "length": tar.stat().st_size,
                    "hashes": {"sha256": hashlib.sha256(tar.read_bytes()).hexdigest()},
                }
            },
        },
        "signatures": [],
    }
    with tuf_fleet.api() as api:
        r = api.post(
            "/bundles", files={"file": (tar.name, tar.read_bytes())}, data={"targets": json.dumps(forged)}
        )
    assert r.status_code == 422, r.text
    assert "targets" in r.json()["error"]["message"], r.text


def test_tuf_server_publishes_targets_metadata_signed_offline_and_refuses_an_older_one(
    tmp_path: Path, tuf_fleet: Fleet
) -> None:
    """The release engineer's flow: `bundle sign` into a local repository, upload with its targets."""
    from edgefleet.bundle.keys import KeyStore
    from edgefleet.bundle.repository import Repository

    assert tuf_fleet.keys is not None
    keys = KeyStore(tuf_fleet.keys)
    local = Repository.create(tmp_path / "local-repo", keys.root_versions())
    signers = keys.signers("targets", None)
    published = tuf_fleet.server.data / "tuf" / "default" / "metadata"
    sent: list[bytes] = []
    for version in ("1.0.0", "2.0.0"):
        tar = make_bundle(tmp_path, "det", version)
        local.add_bundle(tar, signers)
        targets = (local.metadata_dir / f"{len(sent) + 1}.targets.json").read_bytes()
        sent.append(targets)
        with tuf_fleet.api() as api:
            r = api.post("/bundles", files={"file": (tar.name, tar.read_bytes())}, data={"targets": targets})
        assert r.status_code == 201, r.text
        assert json.loads((published / f"{len(sent)}.targets.json").read_bytes()) == json.loads(targets)
    tar = make_bundle(tmp_path, "det", "3.0.0")
    with tuf_fleet.api() as api:  # targets v1 again, for a new bundle: older than the published v2
        r = api.post("/bundles", files={"file": (tar.name, tar.read_bytes())}, data={"targets": sent[0]})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "bundle.rollback", r.text
