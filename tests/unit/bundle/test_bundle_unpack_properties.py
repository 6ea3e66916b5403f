"""Property-based tests: generated hostile tars never install anything but exactly their manifest."""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgefleet.bundle.errors import CODES, BundleError
from edgefleet.bundle.store import BundleStore

from .bundle_helpers import Entry, manifest_entry, manifest_for, write_tar

BENIGN = ["m.onnx", "labels.txt", "sub/a.bin", "sub/deeper/b.bin"]
HOSTILE = [
    "../x",
    "/abs",
    "sub/../../x",
    "",
    ".",
    "./m.onnx",
    "bundle.json",
    "a//b",
    "x\\y",
    "..",
    "sub/..",
    "/",
]
KINDS = [tarfile.REGTYPE] * 5 + [
    tarfile.SYMTYPE,
    tarfile.LNKTYPE,
    tarfile.CHRTYPE,
    tarfile.BLKTYPE,
    tarfile.FIFOTYPE,
    tarfile.DIRTYPE,
]
LINK_TARGETS = ["/etc/passwd", "../../outside", "m.onnx", "sub", ""]

names = st.one_of(
    st.sampled_from(BENIGN + HOSTILE),
    st.text(alphabet="ab./\\-_", min_size=0, max_size=12),
)
entries = st.builds(
    Entry,
    name=names,
    data=st.binary(max_size=64),
    type=st.sampled_from(KINDS),
    linkname=st.sampled_from(LINK_TARGETS),
)


def _snapshot(root: Path) -> set[str]:
    return {str(Path(d, n).relative_to(root)) for d, dirs, files in os.walk(root) for n in (*dirs, *files)}


def _check(tar: Path, sandbox: Path) -> None:
    """Install ``tar``: a listed refusal with an empty store, or exactly the manifest's files."""
    store_root = sandbox / "store"
    outside_before = _snapshot(sandbox) - {p for p in _snapshot(sandbox) if p.startswith("store")}
    store = BundleStore(store_root)
    installed = None
    refusal = ""
    try:
        installed = store.install(tar)
    except BundleError as exc:
        refusal = exc.code
    if installed is None:
        assert refusal in CODES, refusal
        assert list(store_root.iterdir()) == []
    else:
        on_disk = {
            Path(d, n).relative_to(installed.path).as_posix()
            for d, _dirs, files in os.walk(installed.path)
            for n in files
        }
        assert on_disk == {f.path for f in installed.manifest.files} | {"bundle.json"}
        for f in installed.manifest.files:
            p = installed.path / f.path
            assert not p.is_symlink()
            assert hashlib.sha256(p.read_bytes()).hexdigest() == f.sha256
    outside_after = {p for p in _snapshot(sandbox) if not p.startswith("store")}
    assert outside_after == outside_before, "nothing is written outside the store"


@pytest.mark.unit
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    listed=st.dictionaries(st.sampled_from(BENIGN), st.binary(max_size=64), min_size=1, max_size=4),
    extra=st.lists(entries, max_size=4),
    lie_about=st.sampled_from([None, "size", "hash"]),
    shuffle=st.randoms(use_true_random=False),
    drop_manifest=st.booleans(),
)
def test_generated_hostile_tars_never_escape(
    listed: dict[str, bytes], extra: list[Entry], lie_about: str | None, shuffle: object, drop_manifest: bool
) -> None:
    """A valid manifest plus generated entries (links, devices, traversal, duplicates, lies)."""
    body = manifest_for(listed)
    files = body["files"]
    assert isinstance(files, list)
    if lie_about == "size":
        files[0]["size"] += 1
    elif lie_about == "hash":
        files[0]["sha256"] = hashlib.sha256(b"something else").hexdigest()
    payload = [Entry(p, d) for p, d in sorted(listed.items())] + extra
    shuffle.shuffle(payload)  # type: ignore[attr-defined]
    all_entries = payload if drop_manifest else [manifest_entry(body), *payload]
    with tempfile.TemporaryDirectory(prefix="edgefleet-bundle-prop-") as tmp:
        sandbox = Path(tmp)
        try:
            tar = write_tar(sandbox / "in.tar", all_entries)
        except (ValueError, tarfile.TarError):
            return  # tarfile itself cannot write this entry (e.g. a name too long for a header)
        _check(tar, sandbox)


@pytest.mark.unit
@settings(max_examples=150, deadline=None)
@given(position=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255))
def test_any_single_byte_change_is_refused_or_harmless(position: int, value: int) -> None:
    """Flip one byte anywhere in a good bundle: refused, or the installed files still match the manifest."""
    files = {"m.onnx": b"model" * 50, "sub/labels.txt": b"up\ndown\n"}
    with tempfile.TemporaryDirectory(prefix="edgefleet-bundle-prop-") as tmp:
        sandbox = Path(tmp)
        tar = write_tar(
            sandbox / "in.tar",
            [
                manifest_entry(manifest_for(files, model="m.onnx")),
                *(Entry(p, d) for p, d in sorted(files.items())),
            ],
        )
        data = bytearray(tar.read_bytes())
        data[position % len(data)] = value
        tar.write_bytes(bytes(data))
        _check(tar, sandbox)
