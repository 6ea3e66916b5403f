"""The control plane as a TUF repository of the bundles it stores (one repository per project).

:class:`TufTrustStore` implements :class:`edgefleet.server.keys.TrustStore` over
:class:`edgefleet.bundle.repository.Repository` in ``<data dir>/tuf/<project>/``:

- **trust root**: the root chain of a keys directory made by ``edgefleet keys init`` (``--tuf-keys``);
  the newest root goes to every enrolling device, which verifies every bundle against it;
- **targets**: an upload that carries targets metadata (``targets`` form field, the
  ``N.targets.json`` that ``edgefleet bundle sign`` wrote with the offline targets key) is admitted
  only when that metadata is signed by the root's targets keys, newer than the published one, and
  lists this bundle with its exact length and sha256; it is then published as is. An upload without
  it is signed by the server itself when the keys directory holds a targets key it can load
  (plaintext, or encrypted with the passphrase in ``--tuf-passphrase-env``); else it is refused;
- **snapshot and timestamp**: signed with the online keys (``<keys>/online/``) after every change
  and again, lazily, whenever a device asks for ``timestamp.json`` after :meth:`Repository.next_refresh`.

Metadata is served from the repository directory and targets from the blob store (the bytes are the
same, content-addressed: ``targets/<sha256>.<name>-<version>.tar``), see ``server/api/device.py``.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgefleet.bundle.errors import BundleError
from edgefleet.bundle.keys import ONLINE_ROLES, KeyStore
from edgefleet.bundle.repository import Repository, target_path
from edgefleet.errors import EdgefleetError, VerificationError
from edgefleet.server.errors import ServerInputError, ServerNotFoundError

__all__ = ["TufTrustStore"]

_META = re.compile(r"^(?:\d{1,9}\.(?:root|targets|snapshot)|root|timestamp)\.json$")
_TARGET = re.compile(r"^([0-9a-f]{64})\.(.{1,300})$")


class TufTrustStore:
    """Bundle trust by TUF (see the module docstring)."""

    def __init__(self, data_dir: Path, keys_dir: Path, *, passphrase: bytes | None = None) -> None:
        self.root = data_dir / "tuf"
        self.keys = KeyStore(keys_dir)
        if not self.keys.exists():
            raise ServerInputError(
                f"--tuf-keys: {keys_dir} is not a keys directory (make one with `edgefleet keys init`)",
                field="tuf-keys",
            )
        self._roots = self.keys.root_versions()
        try:
            self._online = {r: self.keys.signers(r, None) for r in ONLINE_ROLES}
        except EdgefleetError as exc:
            raise ServerInputError(
                f"--tuf-keys: the online keys in {keys_dir}/online do not load: {exc.message}",
                field="tuf-keys",
            ) from exc
        missing = [r for r, s in self._online.items() if not s]
        if missing:
            raise ServerInputError(
                f"--tuf-keys: {keys_dir}/online holds no {' or '.join(missing)} key", field="tuf-keys"
            )
        self._targets_signers: list[Any] = []
        if self.keys.key_files("targets"):
            try:
                self._targets_signers = self.keys.signers("targets", passphrase)
            except EdgefleetError:
                self._targets_signers = []  # encrypted and no passphrase: uploads bring signed targets
        self._lock = threading.Lock()
        self._repos: dict[str, Repository] = {}
        self._due: dict[str, datetime | None] = {}  # when each project's timestamp must be renewed

    @property
    def signs_targets(self) -> bool:
        return bool(self._targets_signers)

    def repository(self, project: str) -> Repository:
        """The project's repository, created with the root chain (and new roots published) on first use."""
        with self._lock:
            repo = self._repos.get(project)
            if repo is None:
                path = self.root / project
                repo = (
                    Repository.create(path, self._roots)
                    if not Repository(path).exists()
                    else Repository(path)
                )
                repo.sync_roots(self._roots)
                self._repos[project] = repo
                self._due[project] = repo.next_refresh()
            return repo

    # -- TrustStore -----------------------------------------------------------------------------

    def admit(
        self, project: str, manifest: dict[str, Any], sha256: str, size: int, targets: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        repo = self.repository(project)
        path = target_path(str(manifest["name"]), str(manifest["version"]))
        try:
            if targets is not None:
                md = repo.publish_targets(json.dumps(targets).encode())
                info = md.signed.targets.get(path)
                if info is None or info.hashes.get("sha256") != sha256 or info.length != size:
                    raise VerificationError(
                        f"targets: the signed targets metadata does not list {path} with sha256 {sha256} "
                        f"and length {size}",
                        code="server.targets_mismatch",
                        field="targets",
                    )
            elif self._targets_signers:
                repo.add_target(
                    path,
                    size,
                    sha256,
                    self._targets_signers,
                    custom={"edgefleet": {"name": manifest["name"], "version": manifest["version"]}},
                )
            else:
                raise VerificationError(
                    "targets: this server verifies bundles with TUF and holds no targets key; upload the "
                    "targets metadata signed by `edgefleet bundle sign` with the bundle",
                    code="server.targets_required",
                    field="targets",
                )
            self._due[project] = repo.refresh(self._online).next_refresh
        except BundleError as exc:
            raise VerificationError(f"targets: {exc.message}", code=exc.code, field="targets") from exc
        return targets

    def trust_material(self, project: str) -> dict[str, Any]:
        repo = self.repository(project)
        return {
            "kind": "tuf",
            "tuf_root": (repo.metadata_dir / "root.json").read_text(),
            "tuf_url": "/device/v1/tuf",
        }

    # -- serving ----------------------------------------------------------------------------------

    def metadata(self, project: str, name: str) -> bytes:
        """One metadata file of the project's repository (timestamp renewed first when it is due)."""
        if not _META.match(name):
            raise ServerNotFoundError(f"no TUF metadata {name!r}", field="name")
        repo = self.repository(project)
        if name == "timestamp.json":
            due = self._due.get(project)
            if due is not None and due <= datetime.now(UTC):
                with contextlib.suppress(BundleError):  # serve what there is: devices refuse it if expired
                    self._due[project] = repo.refresh(self._online).next_refresh
        try:
            return (repo.metadata_dir / name).read_bytes()
        except FileNotFoundError as exc:
            raise ServerNotFoundError(f"no TUF metadata {name!r}", field="name") from exc

    @staticmethod
    def target_sha256(name: str) -> str:
        """The blob a target file name (``<sha256>.<name>-<version>.tar``) refers to."""
        m = _TARGET.match(name)
        if m is None:
            raise ServerNotFoundError(f"no TUF target {name!r}", field="name")
        return m.group(1)
