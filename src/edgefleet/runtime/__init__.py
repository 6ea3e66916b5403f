"""Model execution on the device: ONNX Runtime sessions, provider choice, repository, batching.

The stable entry points::

    from edgefleet.runtime import ModelSession, SessionConfig, ModelRepository, ModelManager

    session = ModelSession.load("model.onnx", providers="auto", threads=None)
    outputs = session.run({"x": array})
"""

from typing import Any

from edgefleet.runtime.config import BatchingConfig, ModelConfig, RuntimeConfig
from edgefleet.runtime.manager import LoadedModel, ModelManager, ModelState
from edgefleet.runtime.repository import ModelRepository, ModelSource
from edgefleet.runtime.session import SessionConfig, TensorSpec


def __getattr__(name: str) -> Any:
    """``ModelSession`` imports ONNX Runtime, so only on first use (LiteRT-only devices lack it)."""
    if name == "ModelSession":
        from edgefleet.runtime.backend_onnxruntime import ModelSession

        return ModelSession
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BatchingConfig",
    "LoadedModel",
    "ModelConfig",
    "ModelManager",
    "ModelRepository",
    "ModelSource",
    "ModelState",
    "RuntimeConfig",
    "SessionConfig",
    "TensorSpec",
]
