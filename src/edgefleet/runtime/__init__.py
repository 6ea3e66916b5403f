"""Model execution on the device: ONNX Runtime sessions, provider choice, repository, batching.

The stable entry points::

    from edgefleet.runtime import ModelSession, SessionConfig, ModelRepository, ModelManager

    session = ModelSession.load("model.onnx", providers="auto", threads=None)
    outputs = session.run({"x": array})
"""

from edgefleet.runtime.config import BatchingConfig, ModelConfig, RuntimeConfig
from edgefleet.runtime.manager import LoadedModel, ModelManager, ModelState
from edgefleet.runtime.repository import ModelRepository, ModelSource
from edgefleet.runtime.session import ModelSession, SessionConfig, TensorSpec

__all__ = [
    "BatchingConfig",
    "LoadedModel",
    "ModelConfig",
    "ModelManager",
    "ModelRepository",
    "ModelSession",
    "ModelSource",
    "ModelState",
    "RuntimeConfig",
    "SessionConfig",
    "TensorSpec",
]
