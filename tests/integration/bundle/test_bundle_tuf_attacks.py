"""Each attack on the update path, over a real HTTP server: refused with its own code, nothing installed."""

from __future__ import annotations

import http.server
import tarfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata, MetaFile, Snapshot, TargetFile, Timestamp

from edgefleet.bundle.client import BundleClient
from edgefleet.bundle.errors import BundleError
from edgefleet.bundle.keys import KeyPolicy, KeyStore
from edgefleet.bundle.repository import Repository
from tests.unit.bundle.bundle_helpers import Entry, manifest_entry, manifest_for, write_tar

from .conftest import World


def _refused(client: BundleClient, code: str, name: str = "relu", version: str = "1.0.0") -> BundleError:
    with pytest.raises(BundleError) as err:
        client.fetch(name, version)
    assert err.value.code == code, err.value
    assert "\n" not in err.value.message
    assert client.store.digests() == [], "nothing was installed"
    downloads = client.downloads_dir
    assert not downloads.exists() or not list(downloads.iterdir()), "no partial download is left"
    return err.value


def _target_blob(world: World, version: str = "1.0.0") -> Path:
    (blob,) = world.repo.targets_dir.glob(f"*.relu-{version}.tar")
    return blob


def _target_url(world: World, version: str = "1.0.0") -> str:
    return f"/targets/{_target_blob(world, version).name}"


def _foreign_keys(tmp: Path) -> KeyStore:
    other = KeyStore(tmp / "attacker-keys")
    other.init(KeyPolicy(), None)
    return other


@pytest.mark.integration
def test_tampered_bundle_is_refused(world: World) -> None:
    """Same length, other bytes on the server: bundle.hash_mismatch."""
    blob = _target_blob(world)
    data = bytearray(blob.read_bytes())
    data[2000] ^= 0xFF
    blob.write_bytes(bytes(data))
    _refused(world.client(), "bundle.hash_mismatch")


@pytest.mark.integration
def test_replayed_old_timestamp_is_a_rollback(world: World) -> None:
    """The device saw timestamp v2; the attacker replays v1: bundle.rollback, trusted state kept."""
    old_timestamp = world.metadata("timestamp.json").read_bytes()
    client = world.client()
    world.release("1.1.0")
    client.fetch("relu", "1.1.0")
    world.metadata("timestamp.json").write_bytes(old_timestamp)
    again = world.client(bootstrap=False)
    with pytest.raises(BundleError) as err:
        again.refresh()
    assert err.value.code == "bundle.rollback"
    trusted = Metadata[Timestamp].from_bytes(
        (world.tmp / "device/state/metadata/timestamp.json").read_bytes()
    )
    assert trusted.signed.version == 2


@pytest.mark.integration
def test_new_timestamp_pointing_to_an_old_snapshot_is_a_rollback(world: World) -> None:
    """Even correctly signed (stolen online key), a timestamp naming snapshot v1 after v2 is refused."""
    world.release("1.1.0")
    world.client().refresh()
    ts = Metadata[Timestamp].from_bytes(world.metadata("timestamp.json").read_bytes())
    ts.signed.version += 1
    ts.signed.snapshot_meta = MetaFile(version=1)
    ts.sign(world.keys.signers("timestamp", None)[0])
    world.metadata("timestamp.json").write_bytes(ts.to_bytes())
    with pytest.raises(BundleError) as err:
        world.client(bootstrap=False).refresh()
    assert err.value.code == "bundle.rollback"


@pytest.mark.integration
def test_expired_timestamp_is_a_freeze(world: World) -> None:
    """Metadata whose timestamp expired (a frozen mirror): bundle.expired."""
    past = datetime.now(UTC) - timedelta(days=3)
    Repository(world.repo.path, clock=lambda: past).refresh(
        {r: world.keys.signers(r, None) for r in ("snapshot", "timestamp")}, force=True
    )
    err = _refused(world.client(), "bundle.expired")
    assert "timestamp" in err.message


@pytest.mark.integration
def test_targets_signed_by_a_wrong_key_are_refused(world: World) -> None:
    """The online keys are stolen, the offline targets key is not: forged targets fail verification."""
    forged = world.repo.targets()
    assert forged is not None
    forged.signed.version += 1
    forged.sign(_foreign_keys(world.tmp).signers("targets", None)[0])
    world.metadata(f"{forged.signed.version}.targets.json").write_bytes(forged.to_bytes())
    world.refresh()
    _refused(world.client(), "bundle.bad_signature")


@pytest.mark.integration
def test_timestamp_signed_by_a_wrong_key_is_refused(world: World) -> None:
    ts = Metadata[Timestamp].from_bytes(world.metadata("timestamp.json").read_bytes())
    ts.signed.version += 1
    ts.sign(_foreign_keys(world.tmp).signers("timestamp", None)[0])
    world.metadata("timestamp.json").write_bytes(ts.to_bytes())
    _refused(world.client(), "bundle.bad_signature")


@pytest.mark.integration
def test_targets_from_another_state_is_mix_and_match(world: World) -> None:
    """Snapshot lists targets v2, the mirror serves v1's targets as 2.targets.json: bundle.mix_and_match."""
    world.release("1.1.0")
    world.metadata("2.targets.json").write_bytes(world.metadata("1.targets.json").read_bytes())
    _refused(world.client(), "bundle.mix_and_match")


@pytest.mark.integration
def test_snapshot_other_than_the_timestamp_names_is_mix_and_match(world: World) -> None:
    """A validly signed snapshot with other bytes than the timestamp's hash: bundle.mix_and_match."""
    snap = Metadata[Snapshot].from_bytes(world.metadata("1.snapshot.json").read_bytes())
    snap.signed.expires += timedelta(seconds=1)
    snap.sign(world.keys.signers("snapshot", None)[0])
    world.metadata("1.snapshot.json").write_bytes(snap.to_bytes())
    _refused(world.client(), "bundle.mix_and_match")


@pytest.mark.integration
def test_length_lie_is_cut_off_early(world: World) -> None:
    """The server streams without end: the client stops right past the signed length."""
    sent = {"bytes": 0}
    stop = threading.Event()

    def endless(h: http.server.SimpleHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.end_headers()
        chunk = b"\0" * 65536
        try:
            while not stop.is_set() and sent["bytes"] < 512 << 20:
                h.wfile.write(chunk)
                sent["bytes"] += len(chunk)
        except OSError:
            return

    world.served.override(_target_url(world), endless)
    client = world.client()
    try:
        err = _refused(client, "bundle.length_mismatch")
    finally:
        stop.set()
    assert err.fields["length"] == _target_blob(world).stat().st_size
    assert sent["bytes"] < 64 << 20, f"the client read on ({sent['bytes']} bytes sent)"


@pytest.mark.integration
def test_length_lie_with_a_content_length_is_cut_off(world: World) -> None:
    """A longer body announced honestly by Content-Length is refused at the first extra byte."""
    blob = _target_blob(world)

    def longer(h: http.server.SimpleHTTPRequestHandler) -> None:
        data = blob.read_bytes() + b"\0" * (1 << 20)
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    world.served.override(_target_url(world), longer)
    _refused(world.client(), "bundle.length_mismatch")


@pytest.mark.integration
def test_connection_dropped_mid_download_is_truncated(world: World) -> None:
    """Content-Length says the full size, the connection closes half way: bundle.truncated."""
    blob = _target_blob(world)

    def half(h: http.server.SimpleHTTPRequestHandler) -> None:
        data = blob.read_bytes()
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data[: len(data) // 2])
        h.wfile.flush()
        h.close_connection = True

    world.served.override(_target_url(world), half)
    _refused(world.client(), "bundle.truncated")


@pytest.mark.integration
def test_short_file_on_the_mirror_is_truncated(world: World) -> None:
    blob = _target_blob(world)
    blob.write_bytes(blob.read_bytes()[:-512])
    _refused(world.client(), "bundle.truncated")


@pytest.mark.integration
def test_hostile_tar_signed_by_the_targets_key_is_still_unpacked_safely(world: World, tmp_path: Path) -> None:
    """A correctly signed tar with a symlink (a compromised build) is refused by the unpacker."""
    files = {"m.onnx": b"model"}
    hostile = write_tar(
        tmp_path / "hostile.tar",
        [
            manifest_entry(manifest_for(files)),
            Entry("m.onnx", b"model"),
            Entry("evil", type=tarfile.SYMTYPE, linkname="/etc/shadow"),
        ],
    )
    targets = world.repo.targets()
    assert targets is not None
    targets.signed.targets["hostile-1.0.0.tar"] = TargetFile.from_file("hostile-1.0.0.tar", str(hostile))
    sha = targets.signed.targets["hostile-1.0.0.tar"].hashes["sha256"]
    (world.repo.targets_dir / f"{sha}.hostile-1.0.0.tar").write_bytes(hostile.read_bytes())
    world.repo._sign_targets(targets.signed, world.keys.signers("targets", None), first=False)
    world.refresh()
    _refused(world.client(), "bundle.link", name="hostile")
