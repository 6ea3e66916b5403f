"""Errors of the tuning engine, each a branch of :mod:`edgefleet.errors` with a ``tune.*`` code.

::

    InvalidInputError
    └── TuneProfileError      tune.profile_invalid: a profile file, its line and what is allowed
    NotFoundError
    └── TuneProfileNotFoundError   tune.profile_not_found
    ConflictError
    ├── TunedActiveError      tune.tuned_active: the tuned daemon owns these knobs
    └── TuneStateError        tune.not_applied / tune.journal_invalid
    VerificationError
    └── TuneVerifyError       tune.verify_failed: knobs differ from the profile
    OperationFailedError
    └── TuneWriteError        tune.write_failed: the kernel refused a write (everything rolled back)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgefleet.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    OperationFailedError,
    VerificationError,
)

__all__ = [
    "TuneProfileError",
    "TuneProfileNotFoundError",
    "TuneStateError",
    "TuneVerifyError",
    "TuneWriteError",
    "TunedActiveError",
]


class TuneProfileError(InvalidInputError):
    """A profile that cannot be used: the message names the file and line. Nothing was applied."""

    default_code = "tune.profile_invalid"

    def __init__(
        self, message: str, *, source: Path | str | None = None, line: int | None = None, **fields: Any
    ) -> None:
        where = ""
        if source is not None:
            where = f"{source}:{line}: " if line else f"{source}: "
        super().__init__(where + message, source=str(source) if source else None, line=line, **fields)


class TuneProfileNotFoundError(NotFoundError):
    default_code = "tune.profile_not_found"


class TunedActiveError(ConflictError):
    default_code = "tune.tuned_active"


class TuneStateError(ConflictError):
    default_code = "tune.state"


class TuneWriteError(OperationFailedError):
    default_code = "tune.write_failed"


class TuneVerifyError(VerificationError):
    """Verify found knobs that differ from the profile."""

    default_code = "tune.verify_failed"
