"""Errors of bundles, keys and the TUF supply chain, each with a stable code.

Every rejection has its own code in the ``bundle.`` (or ``keys.``) namespace and a one-line reason,
so the agent can report exactly why it refused something. The table of codes is in docs/bundle.md
and :data:`CODES` below; a code is never reused for another meaning.

Hierarchy (branch of :mod:`edgefleet.errors` in brackets)::

    BundleInputError      [InvalidInputError]     a manifest, option or file the build refuses
    BundleNotFoundError   [NotFoundError]         a file, key or target that does not exist
    BundleConflictError   [ConflictError]         it exists already (keys dir, repository)
    KeyAccessError        [PermissionDeniedError] a wrong passphrase, an unsafe key-file mode
    BundleUnavailableError[UnavailableError]      an optional package or the repository is unreachable
    BundleError           [VerificationError]     the input is not trustworthy: every unpack/verify rejection
    BundleWriteError      [OperationFailedError]  the system refused a write or a rename
"""

from __future__ import annotations

from typing import Final

from edgefleet.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    OperationFailedError,
    PermissionDeniedError,
    UnavailableError,
    VerificationError,
)

__all__ = [
    "CODES",
    "BundleConflictError",
    "BundleError",
    "BundleInputError",
    "BundleNotFoundError",
    "BundleUnavailableError",
    "BundleWriteError",
    "KeyAccessError",
]


class BundleError(VerificationError):
    """A bundle, a tar entry or TUF metadata that is not trustworthy; nothing was installed."""

    default_code = "bundle.verification_failed"


class BundleInputError(InvalidInputError):
    """A manifest field, an option or an input file that is not allowed; names the field."""

    default_code = "bundle.invalid_input"


class BundleNotFoundError(NotFoundError):
    """A model file, key, repository or target that does not exist."""

    default_code = "bundle.not_found"


class BundleConflictError(ConflictError):
    """The keys directory, repository or output exists already."""

    default_code = "bundle.conflict"


class KeyAccessError(PermissionDeniedError):
    """A private key that cannot be used: wrong passphrase or a file others can read."""

    default_code = "keys.access_denied"


class BundleUnavailableError(UnavailableError):
    """An optional package (onnx) is not installed, or the repository cannot be reached."""

    default_code = "bundle.unavailable"


class BundleWriteError(OperationFailedError):
    """The file system refused a write, fsync or rename."""

    default_code = "bundle.write_failed"


#: Every code this package raises, with the class that carries it and its meaning.
CODES: Final[dict[str, tuple[type[Exception], str]]] = {
    # unpacking and local verification
    "bundle.not_a_tar": (BundleError, "the file is not a readable, uncompressed tar archive"),
    "bundle.manifest_missing": (BundleError, "the first tar entry is not bundle.json"),
    "bundle.manifest_invalid": (BundleError, "bundle.json does not parse or does not match the schema"),
    "bundle.path_absolute": (BundleError, "a tar entry has an absolute path"),
    "bundle.path_traversal": (
        BundleError,
        "a tar entry path contains '..', '.', an empty or a bad component",
    ),
    "bundle.link": (BundleError, "a tar entry is a symlink or hardlink (links are refused altogether)"),
    "bundle.device_file": (BundleError, "a tar entry is a character/block device or a fifo"),
    "bundle.unsupported_entry": (BundleError, "a tar entry is neither a regular file nor allowed otherwise"),
    "bundle.duplicate_entry": (BundleError, "two tar entries have the same path"),
    "bundle.unexpected_file": (BundleError, "a tar entry is not listed in bundle.json"),
    "bundle.missing_file": (BundleError, "a file listed in bundle.json is not in the tar"),
    "bundle.size_mismatch": (
        BundleError,
        "a tar entry's size differs from bundle.json (checked before reading)",
    ),
    "bundle.hash_mismatch": (BundleError, "a file's or the bundle's sha256 differs from what was signed"),
    "bundle.too_large": (BundleError, "bundle.json or the files it lists exceed a configured size limit"),
    # TUF metadata and downloads
    "bundle.rollback": (BundleError, "metadata version is lower than the trusted one (rollback/replay)"),
    "bundle.expired": (BundleError, "metadata has expired (freeze attack or a stale repository)"),
    "bundle.mix_and_match": (
        BundleError,
        "metadata does not match the version or hash its parent role lists",
    ),
    "bundle.bad_signature": (BundleError, "metadata lacks a threshold of valid signatures by trusted keys"),
    "bundle.bad_metadata": (BundleError, "metadata is malformed or of the wrong type"),
    "bundle.length_mismatch": (BundleError, "a download is longer than the signed length (cut off early)"),
    "bundle.truncated": (BundleError, "a download ended before the signed length"),
    "bundle.unknown_target": (BundleNotFoundError, "the signed targets metadata does not list this bundle"),
    "bundle.download_failed": (
        BundleUnavailableError,
        "the repository could not be reached or answered an error",
    ),
    "bundle.untrusted": (BundleInputError, "no trusted root: the client needs an initial root.json"),
    # build, sign, repository
    "bundle.invalid_input": (
        BundleInputError,
        "a manifest field or option is not allowed (named in the message)",
    ),
    "bundle.not_found": (BundleNotFoundError, "an input file, directory or repository does not exist"),
    "bundle.exists": (BundleConflictError, "the output or repository exists already"),
    "bundle.onnx_missing": (BundleUnavailableError, "reading an ONNX signature needs the 'onnx' package"),
    "bundle.model_unreadable": (BundleInputError, "the model file cannot be parsed"),
    "bundle.write_failed": (BundleWriteError, "a write, fsync or rename failed"),
    # keys
    "keys.exists": (BundleConflictError, "the keys directory holds keys already"),
    "keys.not_found": (BundleNotFoundError, "no private key for this role in the keys directory"),
    "keys.bad_passphrase": (KeyAccessError, "the passphrase does not decrypt the private key"),
    "keys.unsafe_mode": (KeyAccessError, "a private key file is readable by group or others"),
    "keys.passphrase_required": (BundleInputError, "an encrypted key needs a passphrase"),
    "keys.threshold": (BundleInputError, "a threshold is below 1 or above the number of keys"),
    "keys.not_authorized": (BundleError, "the keys do not meet the role's threshold in the trusted root"),
}
