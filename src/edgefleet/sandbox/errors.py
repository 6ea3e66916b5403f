"""Errors of the sandbox: limits, cgroups, namespaces, the container backend and the supervisor.

Hierarchy (codes in the ``sandbox.`` namespace)::

    InvalidInputError
    └── LimitError                 sandbox.invalid_limit      a limit that cannot be parsed or is impossible
    NotFoundError
    └── SandboxNotFoundError       sandbox.not_found          a device, a directory, a user, a workload
    UnsupportedError
    └── UnenforceableError         sandbox.unenforceable      --strict and a limit this kernel cannot enforce
    OperationFailedError
    └── SandboxFailedError         sandbox.failed             a cgroup write, a mount, an exec that failed
    ConflictError
    └── WorkloadConflictError      sandbox.conflict           a workload name already running
"""

from __future__ import annotations

from edgefleet.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    OperationFailedError,
    UnsupportedError,
)

__all__ = [
    "LimitError",
    "SandboxFailedError",
    "SandboxNotFoundError",
    "UnenforceableError",
    "WorkloadConflictError",
]


class LimitError(InvalidInputError):
    """A limit that cannot be parsed or can never hold (names the limit and the allowed values)."""

    default_code = "sandbox.invalid_limit"


class SandboxNotFoundError(NotFoundError):
    """A device node, a directory, a user or a workload that does not exist."""

    default_code = "sandbox.not_found"


class UnenforceableError(UnsupportedError):
    """Strict mode and at least one limit this kernel or cgroup layout cannot enforce."""

    default_code = "sandbox.unenforceable"


class SandboxFailedError(OperationFailedError):
    """The kernel refused a cgroup write, a namespace, a mount or the exec itself."""

    default_code = "sandbox.failed"


class WorkloadConflictError(ConflictError):
    """A workload with this name is already running."""

    default_code = "sandbox.conflict"
