"""The repository the control plane serves: targets by the offline key, snapshot/timestamp online."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edgefleet.bundle.build import build_bundle
from edgefleet.bundle.errors import BundleConflictError, BundleError, BundleNotFoundError
from edgefleet.bundle.keys import ONLINE_ROLES, KeyPolicy, KeyStore
from edgefleet.bundle.repository import ExpiryPolicy, Repository

from .bundle_helpers import options, tiny_onnx


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    store = KeyStore(tmp_path / "keys")
    store.init(KeyPolicy(), None)
    return store


def _online(keys: KeyStore) -> dict[str, list[object]]:
    return {r: keys.signers(r, None) for r in ONLINE_ROLES}  # type: ignore[misc]


def _bundle(tmp_path: Path, version: str, op: str = "Relu") -> Path:
    model = tiny_onnx(tmp_path / f"m-{version}-{op}.onnx", op=op)
    return build_bundle(model, tmp_path / f"relu-{version}-{op}.tar", options(version=version)).path


@pytest.mark.unit
def test_layout_and_versions(tmp_path: Path, keys: KeyStore) -> None:
    repo = Repository.create(tmp_path / "repo", keys.root_versions())
    info = repo.add_bundle(_bundle(tmp_path, "1.0.0"), keys.signers("targets", None))
    result = repo.refresh(_online(keys))  # type: ignore[arg-type]
    meta = tmp_path / "repo" / "metadata"
    assert sorted(p.name for p in meta.iterdir() if not p.name.startswith(".")) == [
        "1.root.json",
        "1.snapshot.json",
        "1.targets.json",
        "root.json",
        "timestamp.json",
    ]
    assert (tmp_path / "repo" / "targets" / f"{info.hashes['sha256']}.relu-1.0.0.tar").is_file()
    assert info.custom["edgefleet"]["version"] == "1.0.0"
    assert (result.snapshot_version, result.timestamp_version) == (1, 1)
    repo.add_bundle(_bundle(tmp_path, "1.1.0"), keys.signers("targets", None))
    result = repo.refresh(_online(keys))  # type: ignore[arg-type]
    assert (result.snapshot_version, result.timestamp_version) == (2, 2)
    targets = json.loads((meta / "2.targets.json").read_text())
    assert sorted(targets["signed"]["targets"]) == ["relu-1.0.0.tar", "relu-1.1.0.tar"]


@pytest.mark.unit
def test_same_bundle_twice_is_a_no_op_other_bytes_are_refused(tmp_path: Path, keys: KeyStore) -> None:
    repo = Repository.create(tmp_path / "repo", keys.root_versions())
    tar = _bundle(tmp_path, "1.0.0")
    repo.add_bundle(tar, keys.signers("targets", None))
    repo.add_bundle(tar, keys.signers("targets", None))
    current = repo.targets()
    assert current is not None
    assert current.signed.version == 1
    with pytest.raises(BundleConflictError, match="bump the version"):
        repo.add_bundle(_bundle(tmp_path, "1.0.0", op="Abs"), keys.signers("targets", None))


@pytest.mark.unit
def test_targets_signed_by_another_key_are_refused(tmp_path: Path, keys: KeyStore) -> None:
    other = KeyStore(tmp_path / "other")
    other.init(KeyPolicy(), None)
    repo = Repository.create(tmp_path / "repo", keys.root_versions())
    with pytest.raises(BundleError) as err:
        repo.add_bundle(_bundle(tmp_path, "1.0.0"), other.signers("targets", None))
    assert err.value.code == "keys.not_authorized"
    assert repo.targets() is None


@pytest.mark.unit
def test_refresh_renews_only_what_expires(tmp_path: Path, keys: KeyStore) -> None:
    """Timestamp is renewed within its margin, snapshot within its own; nothing otherwise."""
    clock = Clock()
    policy = ExpiryPolicy(timestamp=timedelta(hours=24), timestamp_margin=timedelta(hours=12))
    repo = Repository.create(tmp_path / "repo", keys.root_versions(), clock=clock, expiry=policy)
    repo.add_bundle(_bundle(tmp_path, "1.0.0"), keys.signers("targets", None))
    first = repo.refresh(_online(keys))  # type: ignore[arg-type]
    assert first.next_refresh == clock.now + timedelta(hours=12)
    clock.now += timedelta(hours=1)
    idle = repo.refresh(_online(keys))  # type: ignore[arg-type]
    assert (idle.snapshot_renewed, idle.timestamp_renewed, idle.timestamp_version) == (False, False, 1)
    clock.now += timedelta(hours=12)
    renewed = repo.refresh(_online(keys))  # type: ignore[arg-type]
    assert (renewed.snapshot_renewed, renewed.timestamp_renewed, renewed.timestamp_version) == (
        False,
        True,
        2,
    )
    clock.now += timedelta(days=5)
    both = repo.refresh(_online(keys))  # type: ignore[arg-type]
    assert (both.snapshot_renewed, both.snapshot_version) == (True, 2)
    assert repo.next_refresh() == both.next_refresh


@pytest.mark.unit
def test_refresh_needs_targets_and_the_online_keys(tmp_path: Path, keys: KeyStore) -> None:
    repo = Repository.create(tmp_path / "repo", keys.root_versions())
    with pytest.raises(BundleNotFoundError):
        repo.refresh(_online(keys))  # type: ignore[arg-type]
    repo.add_bundle(_bundle(tmp_path, "1.0.0"), keys.signers("targets", None))
    with pytest.raises(BundleError) as err:
        repo.refresh({"snapshot": keys.signers("targets", None), "timestamp": keys.signers("targets", None)})
    assert err.value.code == "keys.not_authorized"
    assert not (tmp_path / "repo" / "metadata" / "timestamp.json").exists()


@pytest.mark.unit
def test_sync_roots_refuses_a_root_not_signed_by_its_predecessor(tmp_path: Path, keys: KeyStore) -> None:
    other = KeyStore(tmp_path / "other")
    other.init(KeyPolicy(), None)
    other.rotate("root", None)
    repo = Repository.create(tmp_path / "repo", keys.root_versions())
    with pytest.raises(BundleError) as err:
        repo.sync_roots([keys.root_versions()[0], other.root_versions()[1]])
    assert err.value.code == "keys.not_authorized"
    keys.rotate("root", None)
    assert repo.sync_roots(keys.root_versions()) == [2]
    assert repo.root().signed.version == 2


@pytest.mark.unit
def test_a_hostile_tar_is_never_published(tmp_path: Path, keys: KeyStore) -> None:
    """add_bundle verifies the tar first: a symlink entry is refused and nothing is left in targets/."""
    import tarfile

    from .bundle_helpers import Entry, manifest_entry, manifest_for, write_tar

    hostile = write_tar(
        tmp_path / "h.tar",
        [
            manifest_entry(manifest_for({"m.onnx": b"m"})),
            Entry("m.onnx", b"m"),
            Entry("l", type=tarfile.SYMTYPE, linkname="/etc/shadow"),
        ],
    )
    repo = Repository.create(tmp_path / "repo", keys.root_versions())
    with pytest.raises(BundleError) as err:
        repo.add_bundle(hostile, keys.signers("targets", None))
    assert err.value.code == "bundle.link"
    assert list(repo.targets_dir.iterdir()) == []
    assert repo.targets() is None
