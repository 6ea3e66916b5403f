"""Read a bundle tar safely: check every entry against ``bundle.json`` and, if asked, write it out.

The reader trusts nothing in the archive. It refuses, each with its own code:

- an absolute path (``bundle.path_absolute``), a ``..``/``.``/empty component (``bundle.path_traversal``);
- any symlink or hardlink, wherever it points (``bundle.link``): a bundle never needs one;
- character/block devices and fifos (``bundle.device_file``), directories and other types
  (``bundle.unsupported_entry``);
- a first entry other than ``bundle.json`` (``bundle.manifest_missing``), a manifest that does not
  validate (``bundle.manifest_invalid``);
- a path seen twice (``bundle.duplicate_entry``), a file the manifest does not list
  (``bundle.unexpected_file``), a listed file that is absent (``bundle.missing_file``);
- a size other than the manifest's, checked from the header before any byte is read
  (``bundle.size_mismatch``), a sha256 other than the manifest's (``bundle.hash_mismatch``).

Files are created with ``O_EXCL | O_NOFOLLOW`` under a fresh directory, mode 0644, and fsynced.
This module imports nothing heavy: the device agent uses it.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, Protocol

from edgefleet.bundle.errors import BundleError, BundleNotFoundError
from edgefleet.bundle.fsio import fsync_dir
from edgefleet.bundle.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    BundleManifest,
    check_relative_path,
    parse_manifest,
)

__all__ = ["Limits", "VerifiedBundle", "read_bundle"]

_CHUNK: Final = 1 << 20
_FILE_MODE: Final = 0o644
_DIR_MODE: Final = 0o755


@dataclass(frozen=True)
class Limits:
    """Upper bounds a reader enforces before trusting the manifest's own numbers."""

    max_total_bytes: int = 64 << 30
    max_manifest_bytes: int = MAX_MANIFEST_BYTES


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose every entry matched its manifest; ``sha256`` is that of the whole tar."""

    manifest: BundleManifest
    manifest_bytes: bytes
    sha256: str
    size: int


def _reject(code: str, reason: str, **fields: object) -> BundleError:
    return BundleError(reason, code=code, **fields)


def _check_entry(member: tarfile.TarInfo) -> None:
    code = check_relative_path(member.name)
    if code == "bundle.path_absolute":
        raise _reject(code, f"tar entry {member.name!r}: absolute paths are refused", entry=member.name)
    if code is not None:
        raise _reject(
            code, f"tar entry {member.name!r}: '..', '.', empty or oversized parts", entry=member.name
        )
    if member.issym() or member.islnk():
        raise _reject(
            "bundle.link",
            f"tar entry {member.name!r}: links are refused (points to {member.linkname!r})",
            entry=member.name,
        )
    if member.ischr() or member.isblk() or member.isfifo():
        raise _reject(
            "bundle.device_file",
            f"tar entry {member.name!r}: device files and fifos are refused",
            entry=member.name,
        )
    if not member.isreg() or member.issparse():
        raise _reject(
            "bundle.unsupported_entry",
            f"tar entry {member.name!r}: only regular files are allowed (type {member.type!r})",
            entry=member.name,
        )


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


def _copy(
    tar: tarfile.TarFile, member: tarfile.TarInfo, out: _Sink | None, limit: int
) -> tuple[bytes | None, str]:
    """Stream ``member``'s data (at most ``limit`` bytes, kept only when ``out`` is None and small)."""
    src = tar.extractfile(member)
    if src is None:  # pragma: no cover - regular files always have data
        raise _reject("bundle.unsupported_entry", f"tar entry {member.name!r}: no data", entry=member.name)
    digest = hashlib.sha256()
    kept = bytearray() if out is None else None
    remaining = limit
    try:
        while remaining > 0 and (chunk := src.read(min(_CHUNK, remaining))):
            remaining -= len(chunk)
            digest.update(chunk)
            if out is not None:
                out.write(chunk)
            elif kept is not None:
                kept += chunk
    except (tarfile.TarError, EOFError) as exc:
        raise _reject(
            "bundle.truncated", f"tar entry {member.name!r}: the archive ends inside it", entry=member.name
        ) from exc
    if remaining > 0:
        raise _reject(
            "bundle.truncated", f"tar entry {member.name!r}: the archive ends inside it", entry=member.name
        )
    return (bytes(kept) if kept is not None else None), digest.hexdigest()


def _write_file(dest: Path, rel: str) -> IO[bytes]:
    target = dest / rel
    target.parent.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, _FILE_MODE)
    return os.fdopen(fd, "wb")


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, _files in os.walk(root, topdown=False):
        fsync_dir(Path(dirpath))


class _HashingReader:
    """A sequential reader that hashes every byte it hands out (one pass over the tar)."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self._digest = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._digest.update(data)
        self.size += len(data)
        return data

    def finish(self) -> str:
        """Hash what nobody read yet (padding, trailing bytes) and return the hex digest of it all."""
        while self.read(_CHUNK):
            pass
        return self._digest.hexdigest()


def read_bundle(
    path: Path,
    *,
    dest: Path | None = None,
    expected_sha256: str | None = None,
    limits: Limits | None = None,
) -> VerifiedBundle:
    """Verify the bundle at ``path`` entry by entry; write its files (and bundle.json) under ``dest``.

    One sequential pass: the tar is read as a stream while its sha256 is computed. ``dest`` must be
    an empty directory the caller owns and discards on error; with ``dest`` None the data is only
    checked. When ``expected_sha256`` is given and differs, the error is ``bundle.hash_mismatch``
    whatever else is wrong with the archive.
    """
    limits = limits or Limits()
    try:
        f = path.open("rb")
    except FileNotFoundError as exc:
        raise BundleNotFoundError(f"{path}: no such bundle", path=str(path)) from exc
    with f:
        reader = _HashingReader(f)
        try:
            try:
                tar = tarfile.open(fileobj=reader, mode="r|")  # type: ignore[call-overload]  # noqa: SIM115 - closed below
            except tarfile.TarError as exc:
                raise _reject("bundle.not_a_tar", f"{path}: not an uncompressed tar archive ({exc})") from exc
            with tar:
                manifest, manifest_bytes = _read_entries(tar, dest, limits)
        except BundleError as exc:
            if expected_sha256 is not None and (actual := reader.finish()) != expected_sha256:
                raise _hash_mismatch(path, expected_sha256, actual) from exc
            raise
        sha256 = reader.finish()
        if expected_sha256 is not None and sha256 != expected_sha256:
            raise _hash_mismatch(path, expected_sha256, sha256)
    if dest is not None:
        _fsync_tree(dest)
    return VerifiedBundle(manifest=manifest, manifest_bytes=manifest_bytes, sha256=sha256, size=reader.size)


def _hash_mismatch(path: Path, expected: str, actual: str) -> BundleError:
    return _reject(
        "bundle.hash_mismatch",
        f"{path}: sha256 {actual} is not the signed {expected}",
        expected=expected,
        actual=actual,
    )


def _read_manifest(
    tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path | None, limits: Limits
) -> tuple[BundleManifest, bytes]:
    """The first entry: it must be bundle.json, small, and valid."""
    if member.name != MANIFEST_NAME:
        raise _reject(
            "bundle.manifest_missing",
            f"the first tar entry is {member.name!r}, not {MANIFEST_NAME}",
            entry=member.name,
        )
    if member.size > limits.max_manifest_bytes:
        raise _reject(
            "bundle.too_large", f"{MANIFEST_NAME} is {member.size} bytes (limit {limits.max_manifest_bytes})"
        )
    data, _ = _copy(tar, member, None, member.size)
    manifest_bytes = data or b""
    manifest = parse_manifest(manifest_bytes)
    if manifest.total_size > limits.max_total_bytes:
        raise _reject(
            "bundle.too_large",
            f"the files add up to {manifest.total_size} bytes (limit {limits.max_total_bytes})",
        )
    if dest is not None:
        with _write_file(dest, MANIFEST_NAME) as out:
            out.write(manifest_bytes)
            out.flush()
            os.fsync(out.fileno())
    return manifest, manifest_bytes


def _read_entries(tar: tarfile.TarFile, dest: Path | None, limits: Limits) -> tuple[BundleManifest, bytes]:
    manifest: BundleManifest | None = None
    manifest_bytes = b""
    seen: set[str] = set()
    while True:
        try:
            member = tar.next()
        except tarfile.TarError as exc:
            raise _reject(
                "bundle.not_a_tar", f"corrupt tar header after {len(seen)} entries ({exc})"
            ) from exc
        if member is None:
            break
        _check_entry(member)
        if member.name in seen:
            raise _reject(
                "bundle.duplicate_entry", f"tar entry {member.name!r} appears twice", entry=member.name
            )
        seen.add(member.name)
        if manifest is None:
            manifest, manifest_bytes = _read_manifest(tar, member, dest, limits)
            continue
        entry = manifest.file(member.name)
        if entry is None:
            raise _reject(
                "bundle.unexpected_file",
                f"tar entry {member.name!r} is not listed in {MANIFEST_NAME}",
                entry=member.name,
            )
        if member.size != entry.size:
            raise _reject(
                "bundle.size_mismatch",
                f"tar entry {member.name!r} is {member.size} bytes, {MANIFEST_NAME} says {entry.size}",
                entry=member.name,
                expected=entry.size,
                actual=member.size,
            )
        if dest is None:
            _, digest = _copy(tar, member, _Discard(), entry.size)
        else:
            with _write_file(dest, member.name) as out:
                _, digest = _copy(tar, member, out, entry.size)
                out.flush()
                os.fsync(out.fileno())
        if digest != entry.sha256:
            raise _reject(
                "bundle.hash_mismatch",
                f"tar entry {member.name!r}: sha256 {digest} is not {entry.sha256}",
                entry=member.name,
                expected=entry.sha256,
                actual=digest,
            )
    if manifest is None:
        raise _reject("bundle.manifest_missing", f"the archive holds no entries, hence no {MANIFEST_NAME}")
    missing = [f.path for f in manifest.files if f.path not in seen]
    if missing:
        raise _reject(
            "bundle.missing_file",
            f"{MANIFEST_NAME} lists {missing[0]!r} but the tar lacks it",
            entry=missing[0],
            missing=missing,
        )
    return manifest, manifest_bytes


class _Discard:
    """A write-only sink that keeps nothing (verification without unpacking)."""

    def write(self, data: bytes) -> int:
        return len(data)
