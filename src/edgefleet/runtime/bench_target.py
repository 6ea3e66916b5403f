"""A bench target that runs a model in this process on one backend (ONNX Runtime, OpenVINO, LiteRT).

``edgefleet bench MODEL --backends onnxruntime,openvino`` measures each in turn, side by side, with
the same sessions ``edgefleet serve`` would build (same threads, same caches).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgefleet.runtime.backend import Session, backend_version, load_model
from edgefleet.runtime.loadgen.errors import BenchInputError
from edgefleet.runtime.loadgen.inputs import TensorSpec as BenchTensorSpec
from edgefleet.runtime.loadgen.targets import WireProtocol, Worker
from edgefleet.runtime.session import SessionConfig

__all__ = ["BackendTarget", "backend_option"]


def backend_option(value: str) -> tuple[str, tuple[str, ...]]:
    """``openvino`` → (openvino, ()); ``onnxruntime:cuda`` → (onnxruntime, (cuda,)); ``litert:edgetpu``
    → (litert, (edgetpu,)) as a delegate."""
    name, _, rest = value.strip().partition(":")
    return name, tuple(p for p in rest.split("+") if p)


class _Worker:
    def __init__(self, session: Session, feeds: Mapping[str, np.ndarray[Any, Any]]) -> None:
        self._session = session
        self._feeds = dict(feeds)

    def send(self) -> None:
        self._session.run(self._feeds)

    def close(self) -> None:
        return None


class BackendTarget:
    """One model on one backend in this process."""

    protocol: WireProtocol = "ort"

    def __init__(self, model: Path, spec: str, *, threads: int | None = None) -> None:
        if not model.is_file():
            raise BenchInputError(
                f"model {model} does not exist", code="bench.model_missing", path=str(model)
            )
        name, extra = backend_option(spec)
        config = SessionConfig(
            backend=name,
            providers=extra if name != "litert" and extra else None,
            delegates=extra if name == "litert" else (),
            intra_op_threads=threads,
            allow_spinning=True,
        )
        self.spec = spec
        self._model = model
        self._session = load_model(model, config=config)

    def input_specs(self) -> list[BenchTensorSpec]:
        return [BenchTensorSpec(s.name, s.datatype, s.shape) for s in self._session.inputs]

    def describe(self) -> dict[str, Any]:
        s = self._session
        return {
            "protocol": "in-process",
            "model": str(self._model),
            "backend": s.backend,
            "backend_version": backend_version(s.backend),
            "providers": list(s.providers),
            "choice": s.choice.reason,
            "threads": s.threads,
        }

    def new_worker(self, inputs: Mapping[str, np.ndarray[Any, Any]]) -> Worker:
        return _Worker(self._session, inputs)

    def close(self) -> None:
        return None
