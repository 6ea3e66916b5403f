"""Errors of the load generator, in the ``bench.*`` code namespace.

InvalidInputError
└── BenchInputError       bad option, shape, dtype or input file (``bench.*``)
UnavailableError
└── BenchTargetError      the endpoint cannot be reached or does not serve the model
"""

from __future__ import annotations

from edgefleet.errors import InvalidInputError, UnavailableError

__all__ = ["BenchInputError", "BenchTargetError"]


class BenchInputError(InvalidInputError):
    """A bench option, tensor shape, dtype or input file that cannot be used."""

    default_code = "bench.invalid_input"


class BenchTargetError(UnavailableError):
    """The target endpoint is down, unreachable, or does not serve the model asked for."""

    default_code = "bench.target_unavailable"
