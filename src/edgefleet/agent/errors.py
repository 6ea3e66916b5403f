"""Errors of the device agent, codes namespaced ``agent.*``."""

from __future__ import annotations

from edgefleet.errors import InvalidInputError, OperationFailedError, UnavailableError, VerificationError

__all__ = ["AgentInputError", "AgentStorageError", "AgentUnavailableError", "AgentVerificationError"]


class AgentInputError(InvalidInputError):
    default_code = "agent.invalid_input"


class AgentUnavailableError(UnavailableError):
    default_code = "agent.server_unreachable"


class AgentVerificationError(VerificationError):
    default_code = "agent.verification_failed"


class AgentStorageError(OperationFailedError):
    """The state directory refused a write (``agent.disk_full`` when it has no space left)."""

    default_code = "agent.write_failed"
