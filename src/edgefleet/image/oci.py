"""Reproducible OCI layers and the OCI image layout archive, in pure Python.

A layer is a gzip-compressed tar written from a staging directory: entries sorted by path, every
mtime the build's epoch, uid/gid 0 with empty owner names, modes normalised (directories and
executables 0755, other files 0644, symlinks as they are), gzip with mtime 0 and no file name. The
same staging tree and epoch give the same bytes, hence the same digest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edgefleet.image.errors import ImageBuildError

__all__ = [
    "MEDIA_CONFIG",
    "MEDIA_INDEX",
    "MEDIA_LAYER",
    "MEDIA_MANIFEST",
    "Blob",
    "Layer",
    "canonical_json",
    "write_layer",
    "write_layout",
]

MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces: the same document always has the same bytes (and digest)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Blob:
    """A content-addressed blob: ``sha256:<hex>``, its size and media type."""

    digest: str
    size: int
    media_type: str

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        """The OCI descriptor of this blob."""
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}

    @classmethod
    def of(cls, data: bytes, media_type: str) -> Blob:
        """The blob of ``data``."""
        return cls("sha256:" + hashlib.sha256(data).hexdigest(), len(data), media_type)


@dataclass(frozen=True)
class Layer:
    """A compressed layer file and what the image config and manifest say about it."""

    path: Path
    blob: Blob
    diff_id: str
    uncompressed_size: int
    comment: str

    def to_json(self) -> dict[str, Any]:
        """For the layer cache."""
        return {
            "digest": self.blob.digest,
            "size": self.blob.size,
            "diff_id": self.diff_id,
            "uncompressed_size": self.uncompressed_size,
            "comment": self.comment,
        }

    @classmethod
    def from_json(cls, path: Path, data: dict[str, Any]) -> Layer:
        """From :meth:`to_json` and the layer file."""
        return cls(
            path,
            Blob(str(data["digest"]), int(data["size"]), MEDIA_LAYER),
            str(data["diff_id"]),
            int(data["uncompressed_size"]),
            str(data["comment"]),
        )


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


class _HashingWriter(io.RawIOBase):
    """Hashes and counts what passes through to ``sink``."""

    def __init__(self, sink: _Sink) -> None:
        self.sink, self.sha, self.size = sink, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = bytes(data)
        self.sha.update(view)
        self.size += len(view)
        self.sink.write(view)
        return len(view)


def _walk(root: Path) -> Iterator[Path]:
    """Every path under ``root`` (not ``root`` itself), sorted, parents before children."""
    for path in sorted(root.iterdir(), key=lambda p: p.name):
        yield path
        if path.is_dir() and not path.is_symlink():
            yield from _walk(path)


def _tarinfo(path: Path, arcname: str, epoch: int) -> tarfile.TarInfo:
    st = path.lstat()
    info = tarfile.TarInfo(arcname)
    info.mtime, info.uid, info.gid, info.uname, info.gname = epoch, 0, 0, "", ""
    if stat.S_ISLNK(st.st_mode):
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, str(path.readlink()), 0o777
    elif stat.S_ISDIR(st.st_mode):
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    elif stat.S_ISREG(st.st_mode):
        info.type, info.size = tarfile.REGTYPE, st.st_size
        info.mode = 0o755 if st.st_mode & 0o111 else 0o644
    else:
        raise ImageBuildError(
            f"{path}: only files, directories and symlinks can go into a layer", path=str(path)
        )
    return info


def write_layer(
    staging: Path, dest: Path, *, epoch: int, comment: str, modes: dict[str, int] | None = None
) -> Layer:
    """Write the tree under ``staging`` as a reproducible gzip layer at ``dest``.

    ``modes`` overrides the mode of given paths (``"tmp": 0o1777``).
    """
    modes = modes or {}
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    with tmp.open("wb") as f:
        compressed = _HashingWriter(f)
        with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=6) as gz:
            raw = _HashingWriter(gz)
            with tarfile.open(fileobj=raw, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for path in _walk(staging):
                    arcname = path.relative_to(staging).as_posix()
                    info = _tarinfo(path, arcname, epoch)
                    if arcname in modes:
                        info.mode = modes[arcname]
                    if info.type == tarfile.REGTYPE:
                        with path.open("rb") as src:
                            tar.addfile(info, src)
                    else:
                        tar.addfile(info)
    digest = "sha256:" + compressed.sha.hexdigest()
    tmp.replace(dest)
    return Layer(
        dest, Blob(digest, compressed.size, MEDIA_LAYER), "sha256:" + raw.sha.hexdigest(), raw.size, comment
    )


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, epoch: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uname, info.gname = len(data), epoch, 0o644, "", ""
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str, epoch: int) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mtime, info.mode, info.uname, info.gname = tarfile.DIRTYPE, epoch, 0o755, "", ""
    tar.addfile(info)


def write_layout(
    dest: Path,
    *,
    index: dict[str, Any],
    json_blobs: dict[str, bytes],
    layers: list[Layer],
    epoch: int,
) -> None:
    """Write an OCI image layout as an uncompressed tar: ``oci-layout``, ``index.json``, ``blobs/``.

    ``json_blobs`` maps digests to the bytes of configs, manifests and nested indexes; layer files
    are copied once each even when several manifests share them.
    """
    blobs: dict[str, tuple[bytes | None, Path | None]] = {d: (b, None) for d, b in json_blobs.items()}
    for layer in layers:
        blobs.setdefault(layer.blob.digest, (None, layer.path))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_dir(tar, "blobs", epoch)
        _add_dir(tar, "blobs/sha256", epoch)
        for digest in sorted(blobs):
            data, path = blobs[digest]
            name = "blobs/sha256/" + digest.removeprefix("sha256:")
            if data is not None:
                _add_bytes(tar, name, data, epoch)
            elif path is not None:
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = path.stat().st_size, epoch, 0o644
                info.uname, info.gname = "", ""
                with path.open("rb") as src:
                    tar.addfile(info, src)
        _add_bytes(tar, "index.json", canonical_json(index), epoch)
        _add_bytes(tar, "oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"}), epoch)
    tmp.replace(dest)
