"""Errors of the control plane, each a branch of :mod:`edgefleet.errors` with a ``server.*`` code.

::

    InvalidInputError      server.invalid_selector, server.invalid_bundle, server.invalid_strategy, ...
    NotFoundError          server.not_found
    ConflictError          server.conflict, server.rollout_state
    UnauthenticatedError   server.unauthenticated, server.bad_signature, server.replay
    PermissionDeniedError  server.forbidden, server.decommissioned
    UnavailableError       server.schema_not_migrated, server.schema_too_new
"""

from __future__ import annotations

from edgefleet.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
    UnavailableError,
)

__all__ = [
    "ForbiddenError",
    "RangeNotSatisfiableError",
    "RolloutStateError",
    "SchemaError",
    "ServerConflictError",
    "ServerInputError",
    "ServerNotFoundError",
    "ServerUnauthenticatedError",
]


class ServerInputError(InvalidInputError):
    default_code = "server.invalid_input"


class RangeNotSatisfiableError(InvalidInputError):
    http_status = 416
    default_code = "server.range_not_satisfiable"


class ServerNotFoundError(NotFoundError):
    default_code = "server.not_found"


class ServerConflictError(ConflictError):
    default_code = "server.conflict"


class RolloutStateError(ConflictError):
    """A manual rollout action that the rollout's current phase does not allow."""

    default_code = "server.rollout_state"


class ServerUnauthenticatedError(UnauthenticatedError):
    default_code = "server.unauthenticated"


class ForbiddenError(PermissionDeniedError):
    default_code = "server.forbidden"


class SchemaError(UnavailableError):
    """The database schema is not the one this version of edgefleet expects."""

    default_code = "server.schema"
