"""The device side: fetch TUF metadata and bundles over HTTP, verify them, install into the store.

Built on ``tuf.ngclient.Updater``, which walks the root chain, checks signatures, thresholds,
versions (no rollback), expiry (no freeze) and the hashes and versions each role lists for the next
(no mix-and-match), and persists only metadata that passed (under ``<state>/metadata``).

The bundle download is streamed and checked as it arrives: it is cut off at the first byte past the
signed length (``bundle.length_mismatch``), an early end is ``bundle.truncated``, another sha256 is
``bundle.hash_mismatch``; then the tar is unpacked entry by entry against its manifest into the
content-addressed store (:mod:`edgefleet.bundle.store`).

This module is imported by the device agent: it must not import numpy, onnx or onnxruntime.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import urllib3
from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import TargetFile
from tuf.ngclient import FetcherInterface, Updater, UpdaterConfig, Urllib3Fetcher

from edgefleet.bundle.errors import (
    BundleError,
    BundleInputError,
    BundleNotFoundError,
    BundleUnavailableError,
    BundleWriteError,
)
from edgefleet.bundle.repository import target_path
from edgefleet.bundle.store import BundleStore, InstalledBundle

__all__ = ["BundleClient"]

_ROLLBACK: Final = re.compile(r"must be >=|^Expected \S+\.json version")


@contextmanager
def _translated() -> Iterator[None]:
    """Turn python-tuf's exceptions into edgefleet codes (one place, one table)."""
    try:
        yield
    except tuf_errors.ExpiredMetadataError as exc:
        raise BundleError(f"metadata expired: {exc}", code="bundle.expired") from exc
    except tuf_errors.BadVersionNumberError as exc:
        if _ROLLBACK.search(str(exc)):
            raise BundleError(f"metadata rollback refused: {exc}", code="bundle.rollback") from exc
        raise BundleError(
            f"metadata does not match its parent role: {exc}", code="bundle.mix_and_match"
        ) from exc
    except tuf_errors.UnsignedMetadataError as exc:
        raise BundleError(f"untrusted signature: {exc}", code="bundle.bad_signature") from exc
    except tuf_errors.LengthOrHashMismatchError as exc:
        raise BundleError(
            f"metadata does not match its parent role: {exc}", code="bundle.mix_and_match"
        ) from exc
    except tuf_errors.DownloadLengthMismatchError as exc:
        raise BundleError(f"metadata longer than allowed: {exc}", code="bundle.length_mismatch") from exc
    except tuf_errors.DownloadHTTPError as exc:
        raise BundleUnavailableError(
            f"repository answered HTTP {exc.status_code}: {exc}",
            code="bundle.download_failed",
            status=exc.status_code,
        ) from exc
    except tuf_errors.DownloadError as exc:
        raise BundleUnavailableError(f"repository unreachable: {exc}", code="bundle.download_failed") from exc
    except tuf_errors.RepositoryError as exc:
        raise BundleError(f"bad metadata: {exc}", code="bundle.bad_metadata") from exc
    except OSError as exc:
        raise BundleWriteError(f"cannot store trusted metadata: {exc.strerror or exc}") from exc


class BundleClient:
    """Verify and install bundles from a TUF repository served over HTTP.

    ``state_dir`` keeps the trusted metadata (``metadata/``) and partial downloads
    (``downloads/``); ``trusted_root`` (bytes of a root.json obtained out of band) is needed the
    first time only. ``base_url`` serves ``metadata/`` and ``targets/`` (see
    :mod:`edgefleet.bundle.repository`).
    """

    def __init__(
        self,
        state_dir: Path,
        base_url: str,
        store: BundleStore,
        *,
        trusted_root: bytes | None = None,
        fetcher: FetcherInterface | None = None,
        config: UpdaterConfig | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.metadata_dir = state_dir / "metadata"
        self.downloads_dir = state_dir / "downloads"
        base = base_url.rstrip("/")
        self.metadata_url = f"{base}/metadata/"
        self.targets_url = f"{base}/targets/"
        self.store = store
        self._trusted_root = trusted_root
        self._fetcher = fetcher or Urllib3Fetcher()
        self._config = config or UpdaterConfig()
        self._updater: Updater | None = None

    def refresh(self) -> None:
        """Fetch and verify root (walking the chain), timestamp, snapshot and targets."""
        self.metadata_dir.mkdir(parents=True, exist_ok=True)
        bootstrap = self._trusted_root if not (self.metadata_dir / "root.json").exists() else None
        if bootstrap is None and not (self.metadata_dir / "root.json").exists():
            raise BundleInputError(
                f"{self.metadata_dir}: no trusted root; give the repository's 1.root.json once",
                code="bundle.untrusted",
            )
        with _translated():
            try:
                updater = Updater(
                    str(self.metadata_dir),
                    self.metadata_url,
                    str(self.downloads_dir),
                    self.targets_url,
                    fetcher=self._fetcher,
                    config=self._config,
                    bootstrap=bootstrap,
                )
            except ValueError as exc:
                raise BundleError(
                    f"the trusted root does not load: {exc}", code="bundle.bad_metadata"
                ) from exc
            updater.refresh()
        self._updater = updater

    def target(self, name: str, version: str) -> TargetFile:
        """The signed target info of a bundle (``bundle.unknown_target`` when targets does not list it)."""
        return self.target_by_path(target_path(name, version))

    def target_by_path(self, path: str) -> TargetFile:
        if self._updater is None:
            self.refresh()
        assert self._updater is not None  # noqa: S101 - refresh() sets it or raises
        with _translated():
            info = self._updater.get_targetinfo(path)
        if info is None:
            raise BundleNotFoundError(
                f"{path}: not in the signed targets metadata", code="bundle.unknown_target", target=path
            )
        return info

    def fetch(self, name: str, version: str) -> InstalledBundle:
        """Refresh metadata, then download, verify and install the bundle ``name`` ``version``."""
        self.refresh()
        return self.install(self.target(name, version))

    def install(self, info: TargetFile) -> InstalledBundle:
        """Download (unless already installed), verify and unpack the target into the store."""
        sha256 = info.hashes.get("sha256")
        if sha256 is None or not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise BundleError(
                f"{info.path}: the targets metadata gives no sha256", code="bundle.bad_metadata"
            )
        if self.store.has(sha256):
            return self.store.get(sha256)
        self.downloads_dir.mkdir(parents=True, exist_ok=True)
        part = self.downloads_dir / f"{sha256}.part"
        try:
            self._download(info, sha256, part)
            return self.store.install(part, expected_sha256=sha256)
        finally:
            part.unlink(missing_ok=True)

    def _url(self, info: TargetFile, sha256: str) -> str:
        directory, _, basename = info.path.rpartition("/")
        prefix = f"{directory}/" if directory else ""
        name = f"{sha256}.{basename}" if self._config.prefix_targets_with_hash else basename
        return f"{self.targets_url}{prefix}{name}"

    def _download(self, info: TargetFile, sha256: str, part: Path) -> None:
        """Stream the target into ``part``, checking length as bytes arrive and the hashes at the end."""
        url = self._url(info, sha256)
        digest = hashlib.sha256()
        received = 0
        try:
            with part.open("wb") as f:
                chunks = self._fetcher.fetch(url)
                try:
                    for chunk in chunks:
                        received += len(chunk)
                        if received > info.length:
                            raise BundleError(
                                f"{info.path}: download passed the signed length {info.length}; cut off",
                                code="bundle.length_mismatch",
                                target=info.path,
                                length=info.length,
                            )
                        digest.update(chunk)
                        f.write(chunk)
                finally:
                    close = getattr(chunks, "close", None)
                    if close is not None:
                        close()
                f.flush()
                os.fsync(f.fileno())
        except tuf_errors.DownloadHTTPError as exc:
            raise BundleUnavailableError(
                f"{url}: HTTP {exc.status_code}", code="bundle.download_failed", status=exc.status_code
            ) from exc
        except (tuf_errors.DownloadError, urllib3.exceptions.HTTPError) as exc:
            if received < info.length:
                raise BundleError(
                    f"{info.path}: download ended after {received} of {info.length} bytes",
                    code="bundle.truncated",
                    received=received,
                    length=info.length,
                ) from exc
            raise BundleUnavailableError(f"{url}: {exc}", code="bundle.download_failed") from exc
        except OSError as exc:
            raise BundleWriteError(f"{part}: {exc.strerror or exc}", path=str(part)) from exc
        if received < info.length:
            raise BundleError(
                f"{info.path}: download ended after {received} of {info.length} bytes",
                code="bundle.truncated",
                received=received,
                length=info.length,
            )
        if digest.hexdigest() != sha256:
            raise BundleError(
                f"{info.path}: sha256 {digest.hexdigest()} is not the signed {sha256}",
                code="bundle.hash_mismatch",
                target=info.path,
            )
        with part.open("rb") as f, _translated():
            try:
                info.verify_length_and_hashes(f)
            except tuf_errors.LengthOrHashMismatchError as exc:
                raise BundleError(f"{info.path}: {exc}", code="bundle.hash_mismatch") from exc
