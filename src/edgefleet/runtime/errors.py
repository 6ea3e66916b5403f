"""Errors of the model runtime, each a branch of :mod:`edgefleet.errors` with a ``runtime.*`` or
``infer.*`` code.

::

    InvalidInputError
    ├── InferInputError      infer.*          a request tensor that does not fit the model (400)
    └── ModelLoadError       runtime.load_failed   a file ONNX Runtime cannot load (400, as Triton)
    ConfigError
    └── ModelConfigError     runtime.config   a model's config.toml/json that does not validate (400)
    NotFoundError
    └── ModelNotFoundError   runtime.model_not_found / runtime.version_not_found (404)
    UnavailableError
    ├── ModelNotReadyError   runtime.model_not_ready   known, not loaded (503)
    ├── ProviderError        runtime.provider_unavailable   an execution provider this build lacks
    ├── BackendError         runtime.backend_unavailable    a backend not installed, or not for this file
    └── DelegateError        runtime.delegate_load_failed   a LiteRT delegate that cannot be loaded
    OperationFailedError
    └── InferRunError        infer.run_failed      ONNX Runtime failed while running (500, no traceback)
"""

from __future__ import annotations

from edgefleet.errors import (
    ConfigError,
    InvalidInputError,
    NotFoundError,
    OperationFailedError,
    UnavailableError,
)

__all__ = [
    "BackendError",
    "DelegateError",
    "InferInputError",
    "InferRunError",
    "ModelConfigError",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelNotReadyError",
    "ProviderError",
]


class InferInputError(InvalidInputError):
    """A request tensor that does not match the model's signature; ``fields`` name the tensor."""

    default_code = "infer.invalid_input"


class ModelConfigError(ConfigError):
    """A model's ``config.toml`` / ``config.json`` that cannot be read or does not validate."""

    default_code = "runtime.config"


class ModelNotFoundError(NotFoundError):
    """A model name or version that the repository does not hold."""

    default_code = "runtime.model_not_found"


class ModelNotReadyError(UnavailableError):
    """A model that exists in the repository but is not loaded (or failed to load)."""

    default_code = "runtime.model_not_ready"


class ProviderError(UnavailableError):
    """An execution provider that this ONNX Runtime build does not offer, or an unknown name."""

    default_code = "runtime.provider_unavailable"


class BackendError(UnavailableError):
    """A backend that is not installed here, unknown, or that cannot run this model file type."""

    default_code = "runtime.backend_unavailable"


class DelegateError(UnavailableError):
    """A LiteRT external delegate that cannot be loaded (missing library, not a delegate, no device)."""

    default_code = "runtime.delegate_load_failed"


class ModelLoadError(InvalidInputError):
    """ONNX Runtime refused the model file (corrupt, unsupported opset or operator)."""

    default_code = "runtime.load_failed"


class InferRunError(OperationFailedError):
    """ONNX Runtime failed while running a request."""

    default_code = "infer.run_failed"
