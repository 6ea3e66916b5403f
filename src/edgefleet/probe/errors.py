"""Errors of the probe (codes ``probe.*``).

Hierarchy::

    InvalidInputError
    └── ProbeRootError      probe.bad_root: a --root / --proc ... override that is not a directory

Reading the machine never raises: an unreadable value is reported as unknown with its reason.
"""

from __future__ import annotations

from edgefleet.errors import InvalidInputError

__all__ = ["ProbeRootError"]


class ProbeRootError(InvalidInputError):
    """A path override given to the probe that is not a directory."""

    default_code = "probe.bad_root"
