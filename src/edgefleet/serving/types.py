"""The protocol-neutral request and response the data plane works on (REST and gRPC decode to it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["InferInput", "InferOutput", "InferRequest", "InferResponse", "RequestedOutput"]


@dataclass(frozen=True)
class InferInput:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool | None = None
    """REST only: send this output in the binary extension (``None``: the request's default)."""


@dataclass(frozen=True)
class InferRequest:
    model: str
    version: str
    inputs: list[InferInput]
    outputs: list[RequestedOutput] | None = None
    id: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InferOutput:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray


@dataclass(frozen=True)
class InferResponse:
    model: str
    version: str
    outputs: list[InferOutput]
    id: str = ""
