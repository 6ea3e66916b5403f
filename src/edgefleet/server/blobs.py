"""Content-addressed blob storage: a blob's name is the sha256 of its bytes.

:class:`BlobStore` is the seam; :class:`FileBlobStore` keeps blobs under
``<root>/<aa>/<sha256>`` and writes atomically (temp file, fsync, rename), so a crash never
leaves a blob whose name does not match its content.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from edgefleet.server.errors import RangeNotSatisfiableError, ServerNotFoundError

__all__ = ["BlobStore", "FileBlobStore", "parse_range"]

CHUNK = 256 * 1024


class BlobStore(Protocol):
    def put(self, source: BinaryIO) -> tuple[str, int]:
        """Store the stream's bytes; returns ``(sha256, size)``."""
        ...

    def path(self, sha256: str) -> Path:
        """Local path of a stored blob, or :class:`ServerNotFoundError`."""
        ...

    def delete(self, sha256: str) -> None: ...


class FileBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _where(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ServerNotFoundError(f"no blob {sha256!r}", field="sha256")
        return self.root / sha256[:2] / sha256

    def put(self, source: BinaryIO) -> tuple[str, int]:
        h = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(CHUNK):
                    h.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = h.hexdigest()
            dest = self._where(digest)
            dest.parent.mkdir(exist_ok=True)
            Path(tmp).replace(dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest, size

    def path(self, sha256: str) -> Path:
        p = self._where(sha256)
        if not p.is_file():
            raise ServerNotFoundError(f"no blob {sha256}", field="sha256")
        return p

    def delete(self, sha256: str) -> None:
        self._where(sha256).unlink(missing_ok=True)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end inclusive)`` for a single ``bytes=`` range, None for the whole blob.

    Multiple ranges are answered with the whole blob (allowed by RFC 9110); an unsatisfiable or
    malformed range raises 416.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    bad = RangeNotSatisfiableError(f"Range: cannot parse {header!r}", field="Range", size=size)
    if not dash or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        raise bad
    if first == "":
        if not last or int(last) <= 0:
            raise bad
        start, end = max(0, size - int(last)), size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    if start < 0 or start >= size or end < start:
        raise RangeNotSatisfiableError(f"Range {header!r} is outside 0-{size - 1}", field="Range", size=size)
    return start, end


def iter_file(path: Path, start: int, end: int) -> Iterator[bytes]:
    """The bytes ``start..end`` (inclusive) of a file, in chunks."""
    with path.open("rb") as f:
        f.seek(start)
        left = end - start + 1
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk
