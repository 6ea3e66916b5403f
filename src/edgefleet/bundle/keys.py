"""The offline keys directory: ed25519 keys for the TUF roles and every version of root.json.

Layout of a keys directory (mode 0700)::

    root.json                    the newest root metadata (a copy of the highest metadata/<n>.root.json)
    metadata/<n>.root.json       every root version, kept to publish the chain a client walks
    private/<role>-<keyid16>.pem offline keys (root, targets): PKCS#8 PEM, encrypted with the
                                 passphrase, or plaintext with --insecure-plaintext; mode 0600
    online/<role>-<keyid16>.pem  online keys (snapshot, timestamp) for the control plane: plaintext,
                                 mode 0600; move them to the server and delete them here
    retired/                     keys replaced by a rotation, kept until the operator deletes them

Root rotation follows the TUF specification: root version N+1 is signed by a threshold of the keys
of version N *and* a threshold of its own keys, so a client that trusts N can walk to N+1.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner, Signer, SSlibKey
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, Root
from tuf.api.serialization.json import JSONSerializer

from edgefleet.bundle.errors import (
    BundleConflictError,
    BundleError,
    BundleInputError,
    BundleNotFoundError,
    KeyAccessError,
)
from edgefleet.bundle.fsio import write_atomic

__all__ = [
    "OFFLINE_ROLES",
    "ONLINE_ROLES",
    "ROLES",
    "KeyPolicy",
    "KeyStore",
    "generate_key",
    "load_signer",
    "save_key",
    "signer_for",
]

ROLES: Final = ("root", "targets", "snapshot", "timestamp")
OFFLINE_ROLES: Final = ("root", "targets")
ONLINE_ROLES: Final = ("snapshot", "timestamp")
_SECRET_MODE: Final = 0o600
_DIR_MODE: Final = 0o700
_ENCRYPTED_PEM: Final = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class KeyPolicy:
    """How many keys each role gets, how many must sign, and how long root stays valid."""

    root_keys: int = 1
    root_threshold: int = 1
    targets_keys: int = 1
    targets_threshold: int = 1
    root_expiry: timedelta = timedelta(days=365)

    def keys(self, role: str) -> int:
        return {"root": self.root_keys, "targets": self.targets_keys}.get(role, 1)

    def threshold(self, role: str) -> int:
        return {"root": self.root_threshold, "targets": self.targets_threshold}.get(role, 1)

    def check(self) -> None:
        for role in OFFLINE_ROLES:
            n, t = self.keys(role), self.threshold(role)
            if n < 1 or not 1 <= t <= n:
                raise BundleInputError(
                    f"--{role}-threshold: {t} is not between 1 and the number of {role} keys ({n})",
                    code="keys.threshold",
                    role=role,
                )


def generate_key() -> Ed25519PrivateKey:
    """A new ed25519 private key."""
    return Ed25519PrivateKey.generate()


def signer_for(private: Ed25519PrivateKey) -> CryptoSigner:
    """The securesystemslib signer of a private key (its key id is that of the public key)."""
    return CryptoSigner(private, SSlibKey.from_crypto(private.public_key()))


def save_key(private: Ed25519PrivateKey, path: Path, passphrase: bytes | None) -> None:
    """Write the private key as PKCS#8 PEM (encrypted when ``passphrase``), mode 0600, never overwriting."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _SECRET_MODE)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())


def load_signer(path: Path, passphrase: bytes | None) -> CryptoSigner:
    """Load a private key written by :func:`save_signer`; refuses files others can read."""
    try:
        st = path.stat()
        pem = path.read_bytes()
    except FileNotFoundError as exc:
        raise BundleNotFoundError(f"{path}: no such key file", code="keys.not_found", path=str(path)) from exc
    if st.st_mode & 0o077:
        raise KeyAccessError(
            f"{path}: mode {st.st_mode & 0o777:04o} lets others read it; chmod 600 it",
            code="keys.unsafe_mode",
            path=str(path),
        )
    encrypted = pem.lstrip().startswith(_ENCRYPTED_PEM)
    if encrypted and not passphrase:
        raise BundleInputError(
            f"{path}: the key is encrypted; give its passphrase",
            code="keys.passphrase_required",
            path=str(path),
        )
    try:
        private = serialization.load_pem_private_key(pem, password=passphrase if encrypted else None)
    except ValueError as exc:
        raise KeyAccessError(
            f"{path}: the passphrase does not decrypt this key", code="keys.bad_passphrase", path=str(path)
        ) from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise BundleInputError(f"{path}: not an ed25519 key", path=str(path))
    return signer_for(private)


class KeyStore:
    """A keys directory (see the module docstring for its layout)."""

    def __init__(self, path: Path, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self.path = path
        self._clock = clock

    # -- layout ---------------------------------------------------------------------------------
    @property
    def root_path(self) -> Path:
        return self.path / "root.json"

    def _key_dir(self, role: str) -> Path:
        return self.path / ("online" if role in ONLINE_ROLES else "private")

    def key_files(self, role: str) -> list[Path]:
        """The private key files of ``role``, sorted."""
        directory = self._key_dir(role)
        return sorted(directory.glob(f"{role}-*.pem")) if directory.is_dir() else []

    def exists(self) -> bool:
        return self.root_path.exists()

    # -- reading --------------------------------------------------------------------------------
    def root(self) -> Metadata[Root]:
        """The newest root metadata."""
        try:
            return Metadata[Root].from_bytes(self.root_path.read_bytes())
        except FileNotFoundError as exc:
            raise BundleNotFoundError(
                f"{self.path}: not a keys directory (no root.json); run 'edgefleet keys init'",
                code="keys.not_found",
                path=str(self.path),
            ) from exc

    def root_versions(self) -> list[bytes]:
        """Every root version's bytes, oldest first."""
        files = sorted((self.path / "metadata").glob("*.root.json"), key=lambda p: int(p.name.split(".")[0]))
        return [p.read_bytes() for p in files]

    def signers(self, role: str, passphrase: bytes | None) -> list[Signer]:
        """Every private key of ``role`` that the newest root still lists for it."""
        root = self.root().signed
        wanted = set(root.roles[role].keyids)
        found: list[Signer] = []
        for path in self.key_files(role):
            signer = load_signer(path, passphrase)
            if signer.public_key.keyid in wanted:
                found.append(signer)
        if len(found) < root.roles[role].threshold:
            raise BundleNotFoundError(
                f"{self._key_dir(role)}: {len(found)} {role} key(s) listed in root v{root.version}, "
                f"threshold is {root.roles[role].threshold}",
                code="keys.not_found",
                role=role,
            )
        return found

    # -- writing --------------------------------------------------------------------------------
    def _new_keys(self, role: str, count: int, passphrase: bytes | None) -> list[CryptoSigner]:
        directory = self._key_dir(role)
        directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        created = []
        for _ in range(count):
            private = generate_key()
            signer = signer_for(private)
            secret = passphrase if role in OFFLINE_ROLES else None
            save_key(private, directory / f"{role}-{signer.public_key.keyid[:16]}.pem", secret)
            created.append(signer)
        return created

    def _write_root(self, md: Metadata[Root]) -> None:
        data = md.to_bytes(JSONSerializer(compact=False))
        versions = self.path / "metadata"
        versions.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        write_atomic(versions / f"{md.signed.version}.root.json", data)
        write_atomic(self.root_path, data)

    def init(self, policy: KeyPolicy, passphrase: bytes | None) -> Metadata[Root]:
        """Create every key and root version 1, signed by the root keys.

        ``passphrase`` None stores the offline keys in plaintext (still mode 0600).
        """
        policy.check()
        if self.exists() or any(self.key_files(role) for role in ROLES):
            raise BundleConflictError(
                f"{self.path}: holds keys already", code="keys.exists", path=str(self.path)
            )
        self.path.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        self.path.chmod(_DIR_MODE)
        root = Root(expires=self._clock() + policy.root_expiry, consistent_snapshot=True)
        root_signers: list[CryptoSigner] = []
        for role in ROLES:
            signers = self._new_keys(role, policy.keys(role), passphrase)
            for s in signers:
                root.add_key(s.public_key, role)
            root.roles[role].threshold = policy.threshold(role)
            if role == "root":
                root_signers = signers
        md = Metadata(root)
        for s in root_signers:
            md.sign(s, append=True)
        self._write_root(md)
        return md

    def rotate(
        self,
        role: str,
        passphrase: bytes | None,
        *,
        keys: int | None = None,
        threshold: int | None = None,
        expiry: timedelta = timedelta(days=365),
    ) -> Metadata[Root]:
        """Replace every key of ``role`` with new ones and publish root version N+1.

        N+1 is signed by the old root keys and, when ``role`` is root, by the new ones too. The old
        private keys move to ``retired/``. The snapshot and timestamp keys are online keys: the new ones
        land in ``online/`` for the control plane.
        """
        if role not in ROLES:
            raise BundleInputError(f"--role: {role!r} is not one of {', '.join(ROLES)}", field="role")
        old_md = self.root()
        old_root_signers = self.signers("root", passphrase)
        old_keyids = list(old_md.signed.roles[role].keyids)
        count = keys or len(old_keyids)
        new_threshold = threshold or old_md.signed.roles[role].threshold
        if count < 1 or not 1 <= new_threshold <= count:
            raise BundleInputError(
                f"--threshold: {new_threshold} is not between 1 and {count}", code="keys.threshold"
            )
        old_files = self.key_files(role)
        new_signers = self._new_keys(role, count, passphrase)
        root = Metadata[Root].from_bytes(old_md.to_bytes()).signed
        root.version += 1
        root.expires = self._clock() + expiry
        for keyid in old_keyids:
            root.revoke_key(keyid, role)
        for s in new_signers:
            root.add_key(s.public_key, role)
        root.roles[role].threshold = new_threshold
        md = Metadata(root)
        for s in (*old_root_signers, *(new_signers if role == "root" else ())):
            md.sign(s, append=True)
        _check_signed_by(old_md.signed, md, "the old root keys")
        _check_signed_by(md.signed, md, "the new root keys")
        self._write_root(md)
        retired = self.path / "retired"
        retired.mkdir(mode=_DIR_MODE, exist_ok=True)
        new_ids = {s.public_key.keyid for s in new_signers}
        for path in old_files:
            if not any(path.name.startswith(f"{role}-{k[:16]}") for k in new_ids):
                path.rename(retired / f"v{old_md.signed.version}-{path.name}")
        return md


def _check_signed_by(trusted: Root, md: Metadata[Root], who: str) -> None:
    try:
        trusted.verify_delegate("root", md.signed_bytes, md.signatures)
    except UnsignedMetadataError as exc:
        raise BundleError(
            f"root v{md.signed.version} lacks a threshold of signatures by {who}", code="keys.not_authorized"
        ) from exc
