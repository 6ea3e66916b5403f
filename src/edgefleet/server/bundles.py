"""Bundle uploads: a tar (optionally gzip) with ``bundle.json`` at its root, stored by sha256.

The manifest needs ``name``, ``version`` and ``files`` (``[{"path", "sha256", "size"?}]``); every
listed file must be in the tar with that sha256, so a bundle on the server is what its manifest
says. The blob is stored content-addressed and served with HTTP Range.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgefleet.errors import VerificationError
from edgefleet.server.blobs import BlobStore
from edgefleet.server.errors import ServerConflictError, ServerInputError, ServerNotFoundError
from edgefleet.server.keys import TrustStore
from edgefleet.server.store.models import Blob, Bundle

__all__ = ["find_bundle", "read_manifest", "store_bundle"]

NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?$")
VERSION = re.compile(r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]{1,40})?$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _bad(message: str, field: str) -> ServerInputError:
    return ServerInputError(message, code="server.invalid_bundle", field=field)


def read_manifest(path: Path) -> dict[str, Any]:
    """The checked ``bundle.json`` of the tar at ``path``; every listed file's hash is verified."""
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}
            m = members.get("bundle.json")
            if m is None:
                raise _bad("the upload has no bundle.json at the root of the tar", "bundle.json")
            if m.size > 4 * 1024 * 1024:
                raise _bad("bundle.json is larger than 4 MiB", "bundle.json")
            f = tar.extractfile(m)
            if f is None:  # isfile() members always have content
                raise _bad("bundle.json cannot be read", "bundle.json")
            try:
                manifest = json.loads(f.read())
            except ValueError as exc:
                raise _bad(f"bundle.json is not JSON: {exc}", "bundle.json") from exc
            _check_manifest(manifest)
            for i, entry in enumerate(manifest["files"]):
                member = members.get(entry["path"].removeprefix("./"))
                if member is None:
                    raise _bad(f"files[{i}].path {entry['path']!r} is not in the tar", f"files[{i}].path")
                data = tar.extractfile(member)
                h = hashlib.sha256()
                while data is not None and (chunk := data.read(1 << 20)):
                    h.update(chunk)
                if h.hexdigest() != entry["sha256"]:
                    raise VerificationError(
                        f"files[{i}] {entry['path']!r}: sha256 {h.hexdigest()} does not match the manifest",
                        code="server.bundle_hash_mismatch",
                        field=f"files[{i}].sha256",
                    )
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise _bad(f"the upload is not a readable tar archive: {exc}", "file") from exc
    checked: dict[str, Any] = manifest
    return checked


def _check_manifest(m: object) -> None:
    if not isinstance(m, dict):
        raise _bad("bundle.json must be an object", "bundle.json")
    name, version, files = m.get("name"), m.get("version"), m.get("files")
    if not isinstance(name, str) or not NAME.match(name):
        raise _bad("name: 1-128 of [a-z0-9._-], starting and ending with a letter or digit", "name")
    if not isinstance(version, str) or not VERSION.match(version):
        raise _bad("version: a semantic version like 1.2.3 or 1.2.3-rc.1", "version")
    if not isinstance(files, list) or not files:
        raise _bad("files: a non-empty list of {path, sha256}", "files")
    for i, e in enumerate(files):
        if not isinstance(e, dict) or not isinstance(e.get("path"), str) or not e["path"]:
            raise _bad(f"files[{i}].path: a relative path is required", f"files[{i}].path")
        if e["path"].startswith("/") or ".." in Path(e["path"]).parts:
            raise _bad(f"files[{i}].path: must stay inside the bundle", f"files[{i}].path")
        if not isinstance(e.get("sha256"), str) or not SHA256.match(e["sha256"]):
            raise _bad(f"files[{i}].sha256: 64 lower-case hex digits", f"files[{i}].sha256")


def store_bundle(
    s: Session,
    blobs: BlobStore,
    trust: TrustStore,
    *,
    project: str,
    source: BinaryIO,
    targets: dict[str, Any] | None,
    new_id: str,
    now: Any,
) -> Bundle:
    """Store an uploaded bundle; the same name and version twice is a conflict unless identical."""
    sha, size = blobs.put(source)
    manifest = read_manifest(blobs.path(sha))
    existing = s.execute(
        select(Bundle).where(
            Bundle.project_id == project,
            Bundle.name == manifest["name"],
            Bundle.version == manifest["version"],
        )
    ).scalar_one_or_none()
    if existing is not None:
        if existing.blob_sha256 == sha:
            return existing
        raise ServerConflictError(
            f"bundle {manifest['name']} {manifest['version']} exists with different content",
            field="version",
            sha256=existing.blob_sha256,
        )
    admitted = trust.admit(project, manifest, sha, size, targets)
    if s.get(Blob, sha) is None:
        s.add(Blob(sha256=sha, size=size, created_at=now))
    row = Bundle(
        id=new_id,
        project_id=project,
        name=manifest["name"],
        version=manifest["version"],
        blob_sha256=sha,
        size=size,
        manifest=manifest,
        targets=admitted,
        created_at=now,
    )
    s.add(row)
    return row


def find_bundle(s: Session, project: str, name: str, version: str | None) -> Bundle:
    """A bundle by name and version (the newest upload when ``version`` is None)."""
    q = select(Bundle).where(Bundle.project_id == project, Bundle.name == name)
    if version is not None:
        q = q.where(Bundle.version == version)
    row = s.execute(q.order_by(Bundle.created_at.desc()).limit(1)).scalar_one_or_none()
    if row is None:
        what = f"{name} {version}" if version else name
        raise ServerNotFoundError(f"no bundle {what} in project {project!r}", field="bundle")
    return row
