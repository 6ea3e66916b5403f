"""The inference seam: what the pipeline needs from a model, whoever runs it.

Two implementations: :mod:`edgefleet.pipeline.local_model` (ONNX Runtime in this process) and
:mod:`edgefleet.pipeline.kserve_model` (any KServe v2 / Open Inference Protocol endpoint).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = ["Model", "TensorInfo", "Tensors"]

Tensors = dict[str, npt.NDArray[np.generic]]


@dataclass(frozen=True)
class TensorInfo:
    """One input or output: name, shape (``None`` for a dynamic dimension) and numpy dtype name."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str


@runtime_checkable
class Model(Protocol):
    """A loaded model the pipeline can call from one thread at a time."""

    @property
    def inputs(self) -> list[TensorInfo]: ...

    @property
    def outputs(self) -> list[TensorInfo]: ...

    @property
    def metadata(self) -> Mapping[str, str]:
        """Custom key/value metadata of the model (labels, dictionaries), possibly empty."""
        ...

    def infer(self, batch: Tensors) -> Tensors:
        """Run the model on named input arrays; every output by name."""
        ...

    def close(self) -> None: ...
