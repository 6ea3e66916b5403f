"""Errors of stream pipelines, codes in the ``pipeline.`` namespace.

Hierarchy::

    InvalidInputError
    └── PipelineSpecError         pipeline.spec_invalid: a spec key, its line, what is allowed
    NotFoundError
    └── SourceNotFoundError       pipeline.source_not_found: a camera, file or folder that is not there
    UnavailableError
    └── SourceUnavailableError    pipeline.source_unavailable: a stream that cannot be reached now
    OperationFailedError
    └── PipelineFailedError       pipeline.failed: a model or sink refused to run
"""

from __future__ import annotations

from edgefleet.errors import InvalidInputError, NotFoundError, OperationFailedError, UnavailableError

__all__ = ["PipelineFailedError", "PipelineSpecError", "SourceNotFoundError", "SourceUnavailableError"]


class PipelineSpecError(InvalidInputError):
    """A pipeline spec that does not parse or validate; ``fields`` has ``key`` and ``line``."""

    default_code = "pipeline.spec_invalid"


class SourceNotFoundError(NotFoundError):
    """A camera device, video file or image folder that does not exist."""

    default_code = "pipeline.source_not_found"


class SourceUnavailableError(UnavailableError):
    """A source that exists but cannot be opened or read right now."""

    default_code = "pipeline.source_unavailable"


class PipelineFailedError(OperationFailedError):
    """A model, transform or sink failed in a way the pipeline cannot carry on from."""

    default_code = "pipeline.failed"
