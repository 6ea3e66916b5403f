"""Errors of the inference server's edges, with ``serve.*`` codes.

::

    InvalidInputError
    └── RequestError           serve.bad_request       a body that is not a v2 request (400)
    PayloadTooLargeError
    └── BodyTooLargeError      serve.body_too_large    a body over ``max_body_bytes`` (413)

Model and tensor errors come from :mod:`edgefleet.runtime.errors` (``runtime.*``, ``infer.*``).
"""

from __future__ import annotations

from edgefleet.errors import InvalidInputError, PayloadTooLargeError

__all__ = ["BodyTooLargeError", "RequestError"]


class RequestError(InvalidInputError):
    """A request body that does not follow the KServe v2 protocol; ``fields`` name the part."""

    default_code = "serve.bad_request"


class BodyTooLargeError(PayloadTooLargeError):
    """A request body above the server's ``max_body_bytes``."""

    default_code = "serve.body_too_large"
