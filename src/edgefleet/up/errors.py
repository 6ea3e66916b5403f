"""Errors of `edgefleet up` / `edgefleet down`.

::

    OperationFailedError
    └── UpStepError (up.step_failed)     a step of `up` failed: names the step and the log to read
    UnavailableError
    └── UpUnavailableError (up.*)        something `up` needs is missing: root, a free port, the model
    ConflictError
    └── UpConflictError (up.*)           the data directory is in a state `up` cannot reuse
"""

from __future__ import annotations

from edgefleet.errors import ConflictError, OperationFailedError, UnavailableError

__all__ = ["UpConflictError", "UpStepError", "UpUnavailableError"]


class UpStepError(OperationFailedError):
    default_code = "up.step_failed"


class UpUnavailableError(UnavailableError):
    default_code = "up.unavailable"


class UpConflictError(ConflictError):
    default_code = "up.conflict"
