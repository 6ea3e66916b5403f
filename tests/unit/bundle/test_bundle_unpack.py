"""Safe unpacking: each hostile tar is refused with its own code and nothing escapes the store."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from edgefleet.bundle.build import build_bundle
from edgefleet.bundle.errors import BundleError
from edgefleet.bundle.store import BundleStore
from edgefleet.bundle.unpack import Limits, read_bundle

from .bundle_helpers import (
    Entry,
    manifest_entry,
    manifest_for,
    options,
    tiny_onnx,
    write_tar,
    write_tar_lying_size,
)

MODEL = b"onnx bytes"


def _ok_entries(extra: dict[str, bytes] | None = None) -> list[Entry]:
    files = {"m.onnx": MODEL, **(extra or {})}
    return [
        manifest_entry(manifest_for(files, model="m.onnx")),
        *(Entry(p, d) for p, d in sorted(files.items())),
    ]


def _install_fails(tmp_path: Path, tar: Path, code: str) -> None:
    """Installing ``tar`` fails with ``code``; the store holds nothing and nothing appeared outside it."""
    store = BundleStore(tmp_path / "store")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(BundleError) as err:
        store.install(tar)
    assert err.value.code == code, err.value
    assert list((tmp_path / "store").iterdir()) == [], "no bundle and no temporary directory remain"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({*before, "store"})
    assert "\n" not in err.value.message


@pytest.mark.unit
def test_good_bundle_installs_atomically(tmp_path: Path) -> None:
    tar = write_tar(tmp_path / "ok.tar", _ok_entries({"sub/labels.txt": b"a\n"}))
    store = BundleStore(tmp_path / "store")
    installed = store.install(tar)
    assert installed.path == tmp_path / "store" / installed.sha256
    assert (installed.path / "m.onnx").read_bytes() == MODEL
    assert (installed.path / "sub" / "labels.txt").stat().st_mode & 0o777 == 0o644
    assert store.digests() == [installed.sha256]
    assert store.install(tar).path == installed.path, "installing again is a no-op"
    assert store.verify(installed.sha256).sha256 == installed.sha256


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("../escape", "bundle.path_traversal"),
        ("sub/../../escape", "bundle.path_traversal"),
        ("/tmp/escape", "bundle.path_absolute"),
        ("./m.onnx", "bundle.path_traversal"),
    ],
)
def test_path_traversal_is_refused(tmp_path: Path, name: str, code: str) -> None:
    tar = write_tar(tmp_path / "bad.tar", [*_ok_entries(), Entry(name, b"evil")])
    _install_fails(tmp_path, tar, code)
    assert not (tmp_path / "escape").exists()


@pytest.mark.unit
@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside", "m.onnx"])
def test_symlinks_are_refused_wherever_they_point(tmp_path: Path, target: str) -> None:
    tar = write_tar(
        tmp_path / "bad.tar", [*_ok_entries(), Entry("link", type=tarfile.SYMTYPE, linkname=target)]
    )
    _install_fails(tmp_path, tar, "bundle.link")


@pytest.mark.unit
@pytest.mark.parametrize("target", ["/etc/passwd", "m.onnx"])
def test_hardlinks_are_refused_wherever_they_point(tmp_path: Path, target: str) -> None:
    tar = write_tar(
        tmp_path / "bad.tar", [*_ok_entries(), Entry("hl", type=tarfile.LNKTYPE, linkname=target)]
    )
    _install_fails(tmp_path, tar, "bundle.link")


@pytest.mark.unit
@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_device_files_and_fifos_are_refused(tmp_path: Path, kind: bytes) -> None:
    tar = write_tar(tmp_path / "bad.tar", [*_ok_entries(), Entry("dev", type=kind)])
    _install_fails(tmp_path, tar, "bundle.device_file")


@pytest.mark.unit
def test_directories_are_refused(tmp_path: Path) -> None:
    tar = write_tar(tmp_path / "bad.tar", [*_ok_entries(), Entry("dir", type=tarfile.DIRTYPE)])
    _install_fails(tmp_path, tar, "bundle.unsupported_entry")


@pytest.mark.unit
def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    """A second copy of a listed file (even with the right bytes) or of bundle.json is refused."""
    entries = _ok_entries()
    _install_fails(
        tmp_path, write_tar(tmp_path / "a.tar", [*entries, Entry("m.onnx", MODEL)]), "bundle.duplicate_entry"
    )
    _install_fails(tmp_path, write_tar(tmp_path / "b.tar", [*entries, entries[0]]), "bundle.duplicate_entry")


@pytest.mark.unit
def test_file_not_in_manifest_is_refused(tmp_path: Path) -> None:
    tar = write_tar(tmp_path / "bad.tar", [*_ok_entries(), Entry("payload.sh", b"#!/bin/sh")])
    _install_fails(tmp_path, tar, "bundle.unexpected_file")


@pytest.mark.unit
def test_missing_file_is_refused(tmp_path: Path) -> None:
    entries = _ok_entries({"labels.txt": b"x"})
    tar = write_tar(tmp_path / "bad.tar", [e for e in entries if e.name != "labels.txt"])
    _install_fails(tmp_path, tar, "bundle.missing_file")


@pytest.mark.unit
def test_size_beyond_manifest_is_refused_before_reading(tmp_path: Path) -> None:
    """A header that claims more bytes than bundle.json lists is refused from the header alone."""
    entries = _ok_entries()
    entries[1] = Entry("m.onnx", MODEL, size=50 << 20)
    tar = write_tar_lying_size(tmp_path / "bad.tar", entries)
    assert tar.stat().st_size < 1 << 20, "the claimed 50 MiB are not even there"
    _install_fails(tmp_path, tar, "bundle.size_mismatch")


@pytest.mark.unit
def test_hash_mismatch_is_refused(tmp_path: Path) -> None:
    entries = _ok_entries()
    entries[1] = Entry("m.onnx", b"ONNX BYTES")  # same size, other bytes
    _install_fails(tmp_path, write_tar(tmp_path / "bad.tar", entries), "bundle.hash_mismatch")


@pytest.mark.unit
def test_whole_tar_hash_is_checked(tmp_path: Path) -> None:
    tar = write_tar(tmp_path / "ok.tar", _ok_entries())
    with pytest.raises(BundleError) as err:
        BundleStore(tmp_path / "store").install(tar, expected_sha256="0" * 64)
    assert err.value.code == "bundle.hash_mismatch"


@pytest.mark.unit
def test_manifest_must_come_first_and_validate(tmp_path: Path) -> None:
    entries = _ok_entries()
    _install_fails(
        tmp_path, write_tar(tmp_path / "a.tar", list(reversed(entries))), "bundle.manifest_missing"
    )
    _install_fails(
        tmp_path,
        write_tar(tmp_path / "b.tar", [Entry("bundle.json", b"{not json"), entries[1]]),
        "bundle.manifest_invalid",
    )
    _install_fails(tmp_path, write_tar(tmp_path / "c.tar", []), "bundle.manifest_missing")


@pytest.mark.unit
def test_not_a_tar_and_compressed_tars_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(os.urandom(4096))
    _install_fails(tmp_path, junk, "bundle.not_a_tar")
    gz = tmp_path / "b.tar.gz"
    with tarfile.open(gz, "w:gz") as t:
        info = tarfile.TarInfo("bundle.json")
        t.addfile(info, io.BytesIO(b""))
    _install_fails(tmp_path, gz, "bundle.not_a_tar")


@pytest.mark.unit
def test_truncated_tar_is_refused(tmp_path: Path) -> None:
    built = build_bundle(tiny_onnx(tmp_path / "m.onnx"), tmp_path / "b.tar", options())
    with tarfile.open(built.path) as tar:
        offset = tar.getmember("m.onnx").offset_data
    cut = tmp_path / "cut.tar"
    cut.write_bytes(built.path.read_bytes()[: offset + 10])  # inside the model's data
    _install_fails(tmp_path, cut, "bundle.truncated")
    header_cut = tmp_path / "header-cut.tar"
    header_cut.write_bytes(built.path.read_bytes()[: offset - 100])  # inside the model's header
    _install_fails(tmp_path, header_cut, "bundle.missing_file")


@pytest.mark.unit
def test_limits_bound_the_manifest_and_the_total(tmp_path: Path) -> None:
    tar = write_tar(tmp_path / "ok.tar", _ok_entries())
    with pytest.raises(BundleError) as err:
        read_bundle(tar, limits=Limits(max_total_bytes=3))
    assert err.value.code == "bundle.too_large"
    with pytest.raises(BundleError) as err:
        read_bundle(tar, limits=Limits(max_manifest_bytes=10))
    assert err.value.code == "bundle.too_large"


@pytest.mark.unit
def test_store_verify_catches_tampering_on_disk(tmp_path: Path) -> None:
    store = BundleStore(tmp_path / "store")
    installed = store.install(write_tar(tmp_path / "ok.tar", _ok_entries()))
    (installed.path / "m.onnx").chmod(0o644)
    (installed.path / "m.onnx").write_bytes(b"ONNX BYTES")
    with pytest.raises(BundleError) as err:
        store.verify(installed.sha256)
    assert err.value.code == "bundle.hash_mismatch"
    (installed.path / "dropped.so").write_bytes(b"")
    with pytest.raises(BundleError) as err:
        store.verify(installed.sha256)
    assert err.value.code == "bundle.unexpected_file"


@pytest.mark.unit
def test_interrupted_install_leaves_only_a_temporary_directory(tmp_path: Path) -> None:
    """What a power cut mid-install leaves (.tmp-*) is never listed and clean() removes it."""
    store = BundleStore(tmp_path / "store")
    partial = tmp_path / "store" / ".tmp-abc123"
    partial.mkdir(parents=True)
    (partial / "m.onnx").write_bytes(b"half")
    assert store.digests() == []
    assert store.clean() == 1
    assert list((tmp_path / "store").iterdir()) == []


@pytest.mark.unit
def test_remove_is_atomic_and_idempotent(tmp_path: Path) -> None:
    store = BundleStore(tmp_path / "store")
    installed = store.install(write_tar(tmp_path / "ok.tar", _ok_entries()))
    store.remove(installed.sha256)
    store.remove(installed.sha256)
    assert store.digests() == []
    assert list((tmp_path / "store").iterdir()) == []
