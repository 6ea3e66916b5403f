"""The ONNX Runtime backend: ``.onnx`` models on ONNX Runtime's execution providers.

The session itself is :class:`edgefleet.runtime.session.ModelSession` (provider choice, thread
budget, optimized-model cache); this module puts it behind the :class:`~edgefleet.runtime.backend.Backend`
interface.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort

from edgefleet.probe.cpu_budget import CpuBudget
from edgefleet.runtime.session import ModelSession, SessionConfig

__all__ = ["BACKEND", "OnnxRuntimeBackend"]


class OnnxRuntimeBackend:
    """Loads ``.onnx`` files into :class:`ModelSession`."""

    name = "onnxruntime"

    def load(
        self,
        path: Path,
        config: SessionConfig,
        *,
        budget_reader: Callable[[], CpuBudget],
        proc: Path,
    ) -> ModelSession:
        return ModelSession.load(path, config=config, budget_reader=budget_reader, proc=proc)

    def version(self) -> str:
        return str(ort.__version__)


BACKEND = OnnxRuntimeBackend()
