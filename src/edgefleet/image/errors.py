"""Errors of image building and running.

Hierarchy (codes in the ``image.`` namespace)::

    InvalidInputError
    └── ImageInputError        image.invalid_input     a platform, a name, an option that is not allowed
    NotFoundError
    └── ImageNotFoundError     image.not_found         a bundle, a base archive, a Debian package, a wheel
    OperationFailedError
    └── ImageBuildError        image.build_failed      apt-get, dpkg-deb, pip or podman failed
"""

from __future__ import annotations

from edgefleet.errors import InvalidInputError, NotFoundError, OperationFailedError

__all__ = ["ImageBuildError", "ImageInputError", "ImageNotFoundError"]


class ImageInputError(InvalidInputError):
    """An option or input that is not allowed; the message names it and what is."""

    default_code = "image.invalid_input"


class ImageNotFoundError(NotFoundError):
    """A file or package the build needs does not exist."""

    default_code = "image.not_found"


class ImageBuildError(OperationFailedError):
    """A tool the build runs (apt-get, dpkg-deb, pip, podman) failed; its output is in the message."""

    default_code = "image.build_failed"
