"""The content-addressed bundle store on a device: ``<root>/<sha256>/`` holds one unpacked bundle.

Installing is atomic: the tar is verified and unpacked into ``<root>/.tmp-<random>/``, every file
and directory is fsynced, then the directory is renamed to ``<root>/<sha256>/`` and ``<root>`` is
fsynced. A power cut leaves either no ``<sha256>/`` (and a ``.tmp-*`` that :meth:`BundleStore.clean`
removes on the next start) or a complete one, never a mix. A store directory is never modified
after the rename; which bundle runs is decided elsewhere (the agent's slots), by name.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from edgefleet.bundle.errors import BundleError, BundleInputError, BundleNotFoundError, BundleWriteError
from edgefleet.bundle.fsio import fsync_dir, sha256_file
from edgefleet.bundle.manifest import MANIFEST_NAME, BundleManifest, parse_manifest
from edgefleet.bundle.unpack import Limits, read_bundle

__all__ = ["BundleStore", "InstalledBundle"]

_DIGEST: Final = re.compile(r"^[0-9a-f]{64}$")
_TMP_PREFIX: Final = ".tmp-"


@dataclass(frozen=True)
class InstalledBundle:
    """An unpacked, verified bundle in the store."""

    sha256: str
    path: Path
    manifest: BundleManifest


class BundleStore:
    """Unpacked bundles under ``root``, each in the directory named by its tar's sha256."""

    def __init__(self, root: Path, *, limits: Limits | None = None) -> None:
        self.root = root
        self._limits = limits or Limits()

    def path(self, sha256: str) -> Path:
        """Where the bundle with this digest lives (whether or not it is installed)."""
        if not _DIGEST.match(sha256):
            raise BundleInputError(
                f"{sha256!r} is not a sha256 hex digest (64 lower-case hex digits)", field="sha256"
            )
        return self.root / sha256

    def has(self, sha256: str) -> bool:
        """True when the bundle is installed (its directory and manifest exist)."""
        return (self.path(sha256) / MANIFEST_NAME).is_file()

    def digests(self) -> list[str]:
        """Digests of every installed bundle, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if _DIGEST.match(p.name) and p.is_dir())

    def get(self, sha256: str) -> InstalledBundle:
        """The installed bundle, or ``bundle.not_found``."""
        path = self.path(sha256)
        try:
            data = (path / MANIFEST_NAME).read_bytes()
        except FileNotFoundError as exc:
            raise BundleNotFoundError(f"bundle {sha256} is not installed", sha256=sha256) from exc
        return InstalledBundle(sha256=sha256, path=path, manifest=parse_manifest(data))

    def install(self, tar: Path, *, expected_sha256: str | None = None) -> InstalledBundle:
        """Verify and unpack ``tar`` into the store, atomically; a no-op when it is there already."""
        self.root.mkdir(parents=True, exist_ok=True)
        if expected_sha256 is not None and self.has(expected_sha256):
            return self.get(expected_sha256)
        tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=self.root))
        try:
            verified = read_bundle(tar, dest=tmp, expected_sha256=expected_sha256, limits=self._limits)
            final = self.path(verified.sha256)
            if self.has(verified.sha256):
                return self.get(verified.sha256)
            tmp.chmod(0o755)
            tmp.rename(final)
            fsync_dir(self.root)
        except OSError as exc:
            raise BundleWriteError(
                f"{self.root}: cannot install the bundle: {exc.strerror or exc}", path=str(self.root)
            ) from exc
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return InstalledBundle(sha256=verified.sha256, path=final, manifest=verified.manifest)

    def verify(self, sha256: str) -> InstalledBundle:
        """Re-hash every file of an installed bundle against its manifest (``bundle.hash_mismatch``)."""
        installed = self.get(sha256)
        on_disk = {
            Path(dirpath, name).relative_to(installed.path).as_posix()
            for dirpath, _dirs, files in os.walk(installed.path)
            for name in files
        } - {MANIFEST_NAME}
        listed = {f.path for f in installed.manifest.files}
        if extra := sorted(on_disk - listed):
            raise BundleError(
                f"bundle {sha256}: {extra[0]!r} is not in {MANIFEST_NAME}",
                code="bundle.unexpected_file",
                entry=extra[0],
            )
        for entry in installed.manifest.files:
            path = installed.path / entry.path
            if path.is_symlink() or not path.is_file():
                raise BundleError(
                    f"bundle {sha256}: {entry.path!r} is missing or not a regular file",
                    code="bundle.missing_file",
                    entry=entry.path,
                )
            digest, size = sha256_file(path)
            if size != entry.size:
                raise BundleError(
                    f"bundle {sha256}: {entry.path!r} is {size} bytes, not {entry.size}",
                    code="bundle.size_mismatch",
                    entry=entry.path,
                )
            if digest != entry.sha256:
                raise BundleError(
                    f"bundle {sha256}: {entry.path!r} has sha256 {digest}, not {entry.sha256}",
                    code="bundle.hash_mismatch",
                    entry=entry.path,
                )
        return installed

    def remove(self, sha256: str) -> None:
        """Delete an installed bundle (first renamed aside, so a half-deleted one is never seen)."""
        path = self.path(sha256)
        if not path.exists():
            return
        doomed = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=self.root))
        doomed.rmdir()
        path.rename(doomed)
        fsync_dir(self.root)
        shutil.rmtree(doomed)

    def clean(self) -> int:
        """Remove what an interrupted install or remove left behind; returns how many."""
        if not self.root.is_dir():
            return 0
        leftovers = [p for p in self.root.iterdir() if p.name.startswith(_TMP_PREFIX)]
        for p in leftovers:
            shutil.rmtree(p, ignore_errors=True)
        return len(leftovers)
