"""Offline keys: encrypted at rest or 0600 plaintext, thresholds, root rotation per the TUF spec."""

from __future__ import annotations

from pathlib import Path

import pytest
from tuf.api.metadata import Metadata, Root

from edgefleet.bundle.errors import (
    BundleConflictError,
    BundleInputError,
    BundleNotFoundError,
    KeyAccessError,
)
from edgefleet.bundle.keys import KeyPolicy, KeyStore

PW = b"correct horse battery staple"


@pytest.mark.unit
def test_init_writes_encrypted_keys_0600_and_root_v1(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    md = store.init(KeyPolicy(root_keys=3, root_threshold=2, targets_keys=2, targets_threshold=1), PW)
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    assert md.signed.version == 1
    assert md.signed.consistent_snapshot
    assert md.signed.roles["root"].threshold == 2
    assert len(md.signed.roles["root"].keyids) == 3
    assert len(md.signed.roles["targets"].keyids) == 2
    offline = store.key_files("root") + store.key_files("targets")
    assert len(offline) == 5
    for path in offline:
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    for path in store.key_files("snapshot") + store.key_files("timestamp"):
        assert path.parent.name == "online"
        assert path.stat().st_mode & 0o777 == 0o600
    md.signed.verify_delegate("root", md.signed_bytes, md.signatures)
    assert store.root_versions()[0] == (tmp_path / "keys" / "root.json").read_bytes()


@pytest.mark.unit
def test_plaintext_keys_load_without_a_passphrase(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    store.init(KeyPolicy(), None)
    assert store.key_files("targets")[0].read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert len(store.signers("targets", None)) == 1


@pytest.mark.unit
def test_wrong_or_missing_passphrase_is_refused(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    store.init(KeyPolicy(), PW)
    with pytest.raises(KeyAccessError) as err:
        store.signers("targets", b"wrong")
    assert err.value.code == "keys.bad_passphrase"
    with pytest.raises(BundleInputError) as err2:
        store.signers("targets", None)
    assert err2.value.code == "keys.passphrase_required"


@pytest.mark.unit
def test_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    store.init(KeyPolicy(), None)
    store.key_files("targets")[0].chmod(0o644)
    with pytest.raises(KeyAccessError) as err:
        store.signers("targets", None)
    assert err.value.code == "keys.unsafe_mode"


@pytest.mark.unit
@pytest.mark.parametrize(("keys", "threshold"), [(1, 2), (2, 0), (0, 1)])
def test_bad_threshold_is_refused(tmp_path: Path, keys: int, threshold: int) -> None:
    with pytest.raises(BundleInputError) as err:
        KeyStore(tmp_path / "keys").init(KeyPolicy(root_keys=keys, root_threshold=threshold), None)
    assert err.value.code == "keys.threshold"
    assert not (tmp_path / "keys").exists()


@pytest.mark.unit
def test_init_twice_is_refused(tmp_path: Path) -> None:
    KeyStore(tmp_path / "keys").init(KeyPolicy(), None)
    with pytest.raises(BundleConflictError) as err:
        KeyStore(tmp_path / "keys").init(KeyPolicy(), None)
    assert err.value.code == "keys.exists"


@pytest.mark.unit
def test_missing_keys_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BundleNotFoundError, match="keys init"):
        KeyStore(tmp_path / "none").root()


@pytest.mark.unit
def test_root_rotation_is_signed_by_old_and_new_keys(tmp_path: Path) -> None:
    """Root v2 verifies under v1's root keys and under its own; the old key is retired."""
    store = KeyStore(tmp_path / "keys")
    v1 = store.init(KeyPolicy(), PW)
    old_file = store.key_files("root")[0]
    v2 = store.rotate("root", PW)
    assert v2.signed.version == 2
    assert set(v2.signed.roles["root"].keyids).isdisjoint(v1.signed.roles["root"].keyids)
    v1.signed.verify_delegate("root", v2.signed_bytes, v2.signatures)
    v2.signed.verify_delegate("root", v2.signed_bytes, v2.signatures)
    assert not old_file.exists()
    assert list((tmp_path / "keys" / "retired").iterdir())
    assert [Metadata[Root].from_bytes(b).signed.version for b in store.root_versions()] == [1, 2]
    assert len(store.signers("root", PW)) == 1, "only the new root key is used from now on"


@pytest.mark.unit
def test_targets_rotation_replaces_the_targets_key(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    v1 = store.init(KeyPolicy(), PW)
    v2 = store.rotate("targets", PW, keys=2, threshold=2)
    assert v2.signed.roles["targets"].threshold == 2
    assert set(v2.signed.roles["targets"].keyids).isdisjoint(v1.signed.roles["targets"].keyids)
    assert v2.signed.roles["root"].keyids == v1.signed.roles["root"].keyids
    assert len(store.signers("targets", PW)) == 2


@pytest.mark.unit
def test_rotation_needs_the_root_passphrase(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    store.init(KeyPolicy(), PW)
    with pytest.raises(KeyAccessError):
        store.rotate("root", b"nope")
    assert store.root().signed.version == 1
    with pytest.raises(BundleInputError):
        store.rotate("director", PW)
