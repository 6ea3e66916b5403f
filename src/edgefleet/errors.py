"""The one error root of edgefleet.

Every error the project raises on purpose is an :class:`EdgefleetError` with a stable machine
``code`` (dotted, lower case, never reused for another meaning), a one-line human ``message`` and
structured ``fields`` (the offending field, the allowed values, a path...). Each edge maps it exactly
once: the CLI to an exit code and a one-line message (:mod:`edgefleet.cli.app`), the HTTP APIs to
a status and ``{"error": {"code", "message", "fields"}}``.

Third-party exceptions are translated at the boundary: ``raise BundleError(...) from exc``.

Hierarchy (exit code / HTTP status)::

    EdgefleetError (1 / 500)
    ├── InvalidInputError (2 / 400)      bad input: a field, a line, a value that is not allowed
    │   └── PayloadTooLargeError (2 / 413)
    ├── ConfigError (2 / 400)            settings that cannot be loaded
    ├── NotFoundError (3 / 404)          a model, device, file or knob that does not exist
    ├── ConflictError (4 / 409)          the thing exists, or is in a state that forbids this
    ├── PermissionDeniedError (5 / 403)  not allowed (role, project, file mode)
    ├── UnauthenticatedError (5 / 401)
    ├── UnavailableError (6 / 503)       a component or service that is needed is missing or down
    │   ├── UnsupportedError (6 / 501)   the hardware or kernel cannot do this at all
    │   └── RateLimitedError (6 / 429)   too many attempts from this caller: retry after ``retry_after``
    ├── VerificationError (7 / 422)      signatures, hashes, metadata: the input is not trustworthy
    └── OperationFailedError (8 / 500)   the system refused an action (a write, a spawn, a kernel call)

Subsystems subclass the branch that fits (``class BundleError(VerificationError)``) and keep codes
in their own namespace (``bundle.hash_mismatch``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "ConfigError",
    "ConflictError",
    "EdgefleetError",
    "InvalidInputError",
    "NotFoundError",
    "OperationFailedError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitedError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnsupportedError",
    "VerificationError",
]


class EdgefleetError(Exception):
    """Root of every error edgefleet raises on purpose.

    ``code`` is stable and machine-readable; ``message`` is one line for a person; ``fields`` carry
    the details (JSON-serialisable values only).
    """

    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal"

    def __init__(self, message: str, *, code: str | None = None, **fields: Any) -> None:
        super().__init__(message)
        self.code: str = code or self.default_code
        self.message: str = message
        self.fields: dict[str, Any] = fields

    def to_dict(self) -> dict[str, Any]:
        """The error as the APIs send it: ``{"code", "message", "fields"}``."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = {k: _jsonable(v) for k, v in self.fields.items()}
        return body

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, fields={self.fields!r})"


class InvalidInputError(EdgefleetError):
    """Bad input: names the field (or file and line) and what is allowed. Nothing was changed."""

    exit_code = 2
    http_status = 400
    default_code = "invalid_input"


class PayloadTooLargeError(InvalidInputError):
    """A body, file or tensor above a configured limit."""

    http_status = 413
    default_code = "payload_too_large"


class ConfigError(EdgefleetError):
    """Settings that cannot be loaded or do not validate."""

    exit_code = 2
    http_status = 400
    default_code = "config.invalid"


class NotFoundError(EdgefleetError):
    """Something named does not exist."""

    exit_code = 3
    http_status = 404
    default_code = "not_found"


class ConflictError(EdgefleetError):
    """The target exists already or is in a state that forbids the operation."""

    exit_code = 4
    http_status = 409
    default_code = "conflict"


class PermissionDeniedError(EdgefleetError):
    """The caller is known but not allowed to do this."""

    exit_code = 5
    http_status = 403
    default_code = "permission_denied"


class UnauthenticatedError(EdgefleetError):
    """The caller could not be identified."""

    exit_code = 5
    http_status = 401
    default_code = "unauthenticated"


class UnavailableError(EdgefleetError):
    """A needed component (a tool, a service, a kernel feature) is missing or down right now."""

    exit_code = 6
    http_status = 503
    default_code = "unavailable"


class UnsupportedError(UnavailableError):
    """The hardware, kernel or platform cannot do this at all."""

    http_status = 501
    default_code = "unsupported"


class RateLimitedError(UnavailableError):
    """Too many attempts from one caller (token guesses): refused until ``retry_after`` seconds pass."""

    http_status = 429
    default_code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None, **fields: Any) -> None:
        super().__init__(message, code=code, retry_after=max(1, math.ceil(retry_after)), **fields)

    @property
    def retry_after(self) -> int:
        return int(self.fields["retry_after"])


class VerificationError(EdgefleetError):
    """Input that is well-formed but not trustworthy: a bad signature, hash, length or version."""

    exit_code = 7
    http_status = 422
    default_code = "verification_failed"


class OperationFailedError(EdgefleetError):
    """The system refused an action: a write, a process spawn, a kernel call."""

    exit_code = 8
    http_status = 500
    default_code = "operation_failed"


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return str(value)
