"""The TUF repository the control plane serves: metadata and bundle tars, laid out for plain HTTP.

Layout (consistent snapshots, so a client always sees one coherent state)::

    <dir>/metadata/<n>.root.json       every root version (a client walks them one by one)
    <dir>/metadata/root.json           the newest root, for bootstrapping a device out of band
    <dir>/metadata/<n>.targets.json    signed offline by the targets key(s): one entry per bundle
    <dir>/metadata/<n>.snapshot.json   signed online: the version of targets.json
    <dir>/metadata/timestamp.json      signed online, short-lived: the version and hash of snapshot
    <dir>/targets/<sha256>.<target>    the bundle tars, target path ``<name>-<version>.tar``

A TUF client (``tuf.ngclient``, :class:`edgefleet.bundle.client.BundleClient`) fetches with
``metadata_base_url=<base>/metadata/`` and ``target_base_url=<base>/targets/``.

Who signs what: ``edgefleet bundle sign`` (release engineer, offline) calls :meth:`Repository.add_bundle`
with the targets keys; the control plane calls :meth:`Repository.refresh` with the online snapshot
and timestamp keys whenever targets changed and, on a timer, before the timestamp expires
(:meth:`Repository.next_refresh`). Writers take an exclusive lock on ``<dir>/.lock``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

from securesystemslib.signer import Signer
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.serialization import DeserializationError
from tuf.api.serialization.json import JSONSerializer

from edgefleet.bundle.errors import BundleConflictError, BundleError, BundleNotFoundError
from edgefleet.bundle.fsio import fsync_dir, write_atomic
from edgefleet.bundle.unpack import read_bundle

__all__ = ["ExpiryPolicy", "RefreshResult", "Repository", "target_path"]

_T = TypeVar("_T", Root, Timestamp, Snapshot, Targets)
_SERIALIZER: Final = JSONSerializer(compact=False)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def target_path(name: str, version: str) -> str:
    """The TUF target path of a bundle: ``<name>-<version>.tar``."""
    return f"{name}-{version}.tar"


@dataclass(frozen=True)
class ExpiryPolicy:
    """How long each role's metadata stays valid, and when it is renewed (``margin`` before expiry)."""

    targets: timedelta = timedelta(days=365)
    snapshot: timedelta = timedelta(days=7)
    timestamp: timedelta = timedelta(days=1)
    snapshot_margin: timedelta = timedelta(days=3)
    timestamp_margin: timedelta = timedelta(hours=12)


@dataclass(frozen=True)
class RefreshResult:
    """What :meth:`Repository.refresh` did."""

    snapshot_version: int
    timestamp_version: int
    snapshot_renewed: bool
    timestamp_renewed: bool
    next_refresh: datetime


class Repository:
    """A TUF repository directory (see the module docstring for the layout and who signs what)."""

    def __init__(
        self, path: Path, *, clock: Callable[[], datetime] = _utcnow, expiry: ExpiryPolicy | None = None
    ) -> None:
        self.path = path
        self.metadata_dir = path / "metadata"
        self.targets_dir = path / "targets"
        self._clock = clock
        self._expiry = expiry or ExpiryPolicy()

    # -- creation and roots -----------------------------------------------------------------------
    def exists(self) -> bool:
        return (self.metadata_dir / "1.root.json").is_file()

    @classmethod
    def create(cls, path: Path, root_versions: Sequence[bytes], **kwargs: Any) -> Repository:
        """A new repository holding the given root versions (oldest first, starting at 1)."""
        repo = cls(path, **kwargs)
        if repo.exists():
            raise BundleConflictError(
                f"{path}: a repository exists already", code="bundle.exists", path=str(path)
            )
        repo.metadata_dir.mkdir(parents=True, exist_ok=True)
        repo.targets_dir.mkdir(parents=True, exist_ok=True)
        repo.sync_roots(root_versions)
        return repo

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive writer lock (an flock on ``.lock``), so two writers never interleave versions."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def root(self) -> Metadata[Root]:
        """The newest root."""
        return self._load(Root, self._root_version_path(self.root_version()))

    def root_version(self) -> int:
        versions = [int(p.name.split(".")[0]) for p in self.metadata_dir.glob("*.root.json")]
        if not versions:
            raise BundleNotFoundError(f"{self.path}: not a repository (no 1.root.json)", path=str(self.path))
        return max(versions)

    def _root_version_path(self, version: int) -> Path:
        return self.metadata_dir / f"{version}.root.json"

    def sync_roots(self, root_versions: Sequence[bytes]) -> list[int]:
        """Publish root versions the repository lacks; each must be signed as the spec demands.

        Version N+1 needs a threshold of version N's root keys and of its own. Returns the
        versions added.
        """
        added: list[int] = []
        with self.lock():
            self.metadata_dir.mkdir(parents=True, exist_ok=True)
            trusted: Root | None = None
            for data in root_versions:
                md = _parse(Root, data, "root")
                version = md.signed.version
                path = self._root_version_path(version)
                if trusted is None:
                    if version != 1:
                        raise BundleError("root versions must start at 1", code="bundle.bad_metadata")
                    _verify(md.signed, md, "root", "its own root keys")
                elif version != trusted.version + 1:
                    raise BundleError(
                        f"root v{version} follows v{trusted.version}", code="bundle.bad_metadata"
                    )
                else:
                    _verify(trusted, md, "root", f"root v{trusted.version}'s keys")
                    _verify(md.signed, md, "root", "its own root keys")
                if path.exists():
                    if (
                        path.read_bytes() != data
                        and _parse(Root, path.read_bytes(), "root").signed != md.signed
                    ):
                        raise BundleConflictError(
                            f"{path}: a different root v{version} is published", code="bundle.exists"
                        )
                else:
                    write_atomic(path, data)
                    added.append(version)
                trusted = md.signed
            if added:
                write_atomic(
                    self.metadata_dir / "root.json", self._root_version_path(self.root_version()).read_bytes()
                )
        return added

    # -- targets (offline key) --------------------------------------------------------------------
    def targets(self) -> Metadata[Targets] | None:
        """The newest targets metadata, or None before the first bundle."""
        version = self._latest_version("targets")
        return None if version is None else self._load(Targets, self.metadata_dir / f"{version}.targets.json")

    def add_bundle(self, bundle: Path, targets_signers: Sequence[Signer]) -> TargetFile:
        """Verify ``bundle`` (a tar), copy it under ``targets/`` and sign a new targets version.

        The same bytes under the same name and version again change nothing; other bytes under a
        published name and version are refused (``bundle.exists``): releases are immutable.
        """
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        # Verify a private copy, so that what is published is exactly what was checked.
        fd, tmp_name = tempfile.mkstemp(prefix=".incoming-", suffix=".tar", dir=self.targets_dir)
        os.close(fd)
        incoming = Path(tmp_name)
        try:
            shutil.copyfile(bundle, incoming)
            verified = read_bundle(incoming)
            path = target_path(verified.manifest.name, verified.manifest.version)
            info = TargetFile(
                length=verified.size,
                hashes={"sha256": verified.sha256},
                path=path,
                unrecognized_fields={
                    "custom": {
                        "edgefleet": {
                            "name": verified.manifest.name,
                            "version": verified.manifest.version,
                            "created": verified.manifest.created.isoformat(),
                        }
                    }
                },
            )
            with self.lock():
                current = self.targets()
                existing = current.signed.targets.get(path) if current else None
                if existing is not None:
                    if existing.hashes.get("sha256") == verified.sha256 and existing.length == verified.size:
                        return existing
                    raise BundleConflictError(
                        f"{path}: a different bundle with this name and version is published already; "
                        "bump the version",
                        code="bundle.exists",
                        target=path,
                    )
                blob = self.targets_dir / f"{verified.sha256}.{path}"
                if not blob.exists():
                    with incoming.open("rb+") as f:
                        os.fsync(f.fileno())
                    incoming.chmod(0o644)
                    incoming.replace(blob)
                    fsync_dir(self.targets_dir)
                targets = current.signed if current else Targets()
                targets.targets[path] = info
                self._sign_targets(targets, targets_signers, first=current is None)
        except FileNotFoundError as exc:
            raise BundleNotFoundError(f"{bundle}: no such bundle", path=str(bundle)) from exc
        finally:
            incoming.unlink(missing_ok=True)
        return info

    def add_target(
        self,
        path: str,
        length: int,
        sha256: str,
        targets_signers: Sequence[Signer],
        *,
        custom: Mapping[str, Any] | None = None,
    ) -> TargetFile:
        """List a target whose bytes are stored elsewhere (a content-addressed blob store that serves
        ``targets/<sha256>.<path>``) and sign a new targets version.

        The same length and sha256 under ``path`` again change nothing; other ones are refused
        (``bundle.exists``): releases are immutable.
        """
        info = TargetFile(
            length=length,
            hashes={"sha256": sha256},
            path=path,
            unrecognized_fields={"custom": dict(custom)} if custom else {},
        )
        with self.lock():
            current = self.targets()
            existing = current.signed.targets.get(path) if current else None
            if existing is not None:
                if existing.hashes.get("sha256") == sha256 and existing.length == length:
                    return existing
                raise BundleConflictError(
                    f"{path}: a different bundle with this name and version is published already; "
                    "bump the version",
                    code="bundle.exists",
                    target=path,
                )
            targets = current.signed if current else Targets()
            targets.targets[path] = info
            self._sign_targets(targets, targets_signers, first=current is None)
        return info

    def publish_targets(self, data: bytes) -> Metadata[Targets]:
        """Publish targets metadata signed elsewhere (offline, by ``edgefleet bundle sign``).

        It must carry a threshold of signatures by the targets keys of the newest root and a version
        above the published one (the same bytes again change nothing), so neither a forged nor an
        older targets file is ever served.
        """
        md = _parse(Targets, data, "targets")
        with self.lock():
            _verify(self.root().signed, md, "targets", "the targets keys of the trusted root")
            current = self.targets()
            if current is not None:
                if md.signed.version == current.signed.version and md.signed == current.signed:
                    return current
                if md.signed.version <= current.signed.version:
                    raise BundleError(
                        f"targets v{md.signed.version} is not newer than the published "
                        f"v{current.signed.version}",
                        code="bundle.rollback",
                        role="targets",
                    )
            write_atomic(self.metadata_dir / f"{md.signed.version}.targets.json", data)
        return md

    def sign_targets(self, targets_signers: Sequence[Signer]) -> int:
        """Re-sign the targets metadata as a new version (after a targets-key rotation or to renew it)."""
        with self.lock():
            current = self.targets()
            if current is None:
                return self._sign_targets(Targets(), targets_signers, first=True)
            return self._sign_targets(current.signed, targets_signers, first=False)

    def _sign_targets(self, targets: Targets, signers: Sequence[Signer], *, first: bool) -> int:
        """Sign ``targets`` as version 1 (``first``) or as the next version, and write it."""
        targets.version = 1 if first else targets.version + 1
        targets.expires = self._clock() + self._expiry.targets
        md = Metadata(targets)
        for s in signers:
            md.sign(s, append=True)
        _verify(self.root().signed, md, "targets", "the targets keys given")
        write_atomic(self.metadata_dir / f"{targets.version}.targets.json", md.to_bytes(_SERIALIZER))
        return targets.version

    # -- snapshot and timestamp (online keys) -------------------------------------------------------
    def refresh(
        self, online_signers: Mapping[str, Sequence[Signer]], *, force: bool = False
    ) -> RefreshResult:
        """Renew snapshot and timestamp as needed, signed by the online keys.

        ``online_signers`` maps ``"snapshot"`` and ``"timestamp"`` to their signers. Snapshot is
        renewed when targets changed, when it expires within ``snapshot_margin`` or with ``force``;
        timestamp when snapshot was renewed or it expires within ``timestamp_margin``.
        Files are written snapshot first, timestamp last, so a client never sees a timestamp that
        names a snapshot which does not exist yet.
        """
        with self.lock():
            now = self._clock()
            root = self.root().signed
            targets = self.targets()
            if targets is None:
                raise BundleNotFoundError(
                    f"{self.path}: no targets metadata yet; sign a bundle first", path=str(self.path)
                )
            snap_version = self._latest_version("snapshot")
            snapshot = (
                self._load(Snapshot, self.metadata_dir / f"{snap_version}.snapshot.json")
                if snap_version
                else None
            )
            renew_snapshot = (
                force
                or snapshot is None
                or snapshot.signed.meta["targets.json"].version != targets.signed.version
                or snapshot.signed.expires - now <= self._expiry.snapshot_margin
                or not _is_signed(root, snapshot, "snapshot")
            )
            if renew_snapshot:
                new_snapshot = Snapshot(
                    version=(snapshot.signed.version + 1) if snapshot else 1,
                    expires=now + self._expiry.snapshot,
                    meta={"targets.json": MetaFile(version=targets.signed.version)},
                )
                snapshot = self._sign(root, new_snapshot, online_signers, "snapshot")
                snap_bytes = snapshot.to_bytes(_SERIALIZER)
                write_atomic(self.metadata_dir / f"{new_snapshot.version}.snapshot.json", snap_bytes)
            assert snapshot is not None  # noqa: S101 - set above on every path
            snap_bytes = (self.metadata_dir / f"{snapshot.signed.version}.snapshot.json").read_bytes()
            ts_path = self.metadata_dir / "timestamp.json"
            timestamp = self._load(Timestamp, ts_path) if ts_path.exists() else None
            renew_timestamp = (
                renew_snapshot
                or timestamp is None
                or timestamp.signed.snapshot_meta.version != snapshot.signed.version
                or timestamp.signed.expires - now <= self._expiry.timestamp_margin
                or not _is_signed(root, timestamp, "timestamp")
            )
            if renew_timestamp:
                new_ts = Timestamp(
                    version=(timestamp.signed.version + 1) if timestamp else 1,
                    expires=now + self._expiry.timestamp,
                    snapshot_meta=MetaFile.from_data(snapshot.signed.version, snap_bytes, ["sha256"]),
                )
                timestamp = self._sign(root, new_ts, online_signers, "timestamp")
                write_atomic(ts_path, timestamp.to_bytes(_SERIALIZER))
            assert timestamp is not None  # noqa: S101 - set above on every path
            return RefreshResult(
                snapshot_version=snapshot.signed.version,
                timestamp_version=timestamp.signed.version,
                snapshot_renewed=renew_snapshot,
                timestamp_renewed=renew_timestamp,
                next_refresh=min(
                    timestamp.signed.expires - self._expiry.timestamp_margin,
                    snapshot.signed.expires - self._expiry.snapshot_margin,
                ),
            )

    def next_refresh(self) -> datetime | None:
        """When :meth:`refresh` must run next (None before the first timestamp)."""
        ts_path = self.metadata_dir / "timestamp.json"
        snap_version = self._latest_version("snapshot")
        if not ts_path.exists() or snap_version is None:
            return None
        ts = self._load(Timestamp, ts_path).signed
        snap = self._load(Snapshot, self.metadata_dir / f"{snap_version}.snapshot.json").signed
        return min(ts.expires - self._expiry.timestamp_margin, snap.expires - self._expiry.snapshot_margin)

    def _sign(
        self, root: Root, signed: _T, online_signers: Mapping[str, Sequence[Signer]], role: str
    ) -> Metadata[_T]:
        md = Metadata(signed)
        for s in online_signers.get(role, ()):
            md.sign(s, append=True)
        _verify(root, md, role, f"the {role} keys given")
        return md

    # -- helpers ------------------------------------------------------------------------------------
    def _latest_version(self, role: str) -> int | None:
        versions = [int(p.name.split(".")[0]) for p in self.metadata_dir.glob(f"*.{role}.json")]
        return max(versions) if versions else None

    def _load(self, kind: type[_T], path: Path) -> Metadata[_T]:
        try:
            return _parse(kind, path.read_bytes(), str(path))
        except FileNotFoundError as exc:
            raise BundleNotFoundError(f"{path}: missing", path=str(path)) from exc


def _parse(kind: type[_T], data: bytes, what: str) -> Metadata[_T]:
    try:
        md = Metadata[kind].from_bytes(data)  # type: ignore[valid-type]
    except DeserializationError as exc:
        raise BundleError(f"{what}: not valid TUF metadata ({exc})", code="bundle.bad_metadata") from exc
    if not isinstance(md.signed, kind):
        raise BundleError(
            f"{what}: expected {kind.type} metadata, got {md.signed.type}", code="bundle.bad_metadata"
        )
    return md


def _is_signed(root: Root, md: Metadata[Any], role: str) -> bool:
    return bool(root.get_verification_result(role, md.signed_bytes, md.signatures))


def _verify(delegator: Root, md: Metadata[Any], role: str, who: str) -> None:
    try:
        delegator.verify_delegate(role, md.signed_bytes, md.signatures)
    except UnsignedMetadataError as exc:
        raise BundleError(
            f"{role} v{md.signed.version} lacks a threshold of signatures by {who}",
            code="keys.not_authorized",
            role=role,
        ) from exc
