"""The OpenVINO backend: ``.onnx`` models on OpenVINO's own runtime (CPU, GPU or NPU plugin).

The ``openvino`` package sits beside ``onnxruntime`` in one environment (``onnxruntime-openvino``
would replace it, since both provide the ``onnxruntime`` module). Threads come from the CPU budget;
compiled blobs are cached under ``<cache_dir>/openvino`` so a restart skips compilation. The device
is ``CPU`` unless the providers name one, e.g. ``openvino:GPU``.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from edgefleet.probe.cpu_budget import CpuBudget
from edgefleet.runtime.datatypes import from_numpy
from edgefleet.runtime.errors import BackendError, InferInputError, InferRunError, ModelLoadError
from edgefleet.runtime.providers import ProviderChoice
from edgefleet.runtime.session import (
    SessionConfig,
    TensorSpec,
    check_feeds,
    model_sha256,
    sample_inputs,
)

__all__ = ["BACKEND", "OpenVinoBackend", "OpenVinoSession"]


def _message(exc: Exception) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else type(exc).__name__


def _spec(port: Any) -> TensorSpec:
    dtype = np.dtype(port.get_element_type().to_dtype())
    dims = tuple(int(d.get_length()) if d.is_static else -1 for d in port.get_partial_shape())
    return TensorSpec(port.get_any_name(), from_numpy(dtype) or str(dtype), dims, dims)


def _device(config: SessionConfig, available: Sequence[str]) -> tuple[str, str]:
    for name in config.providers or ():
        prefix, _, device = name.partition(":")
        if prefix.lower() == "openvino" and device:
            if device.split(".")[0] not in {d.split(".")[0] for d in available} and device != "AUTO":
                raise BackendError(
                    f"OpenVINO device {device!r} is not present; present: {', '.join(available)}",
                    code="runtime.provider_unavailable",
                    field="providers",
                )
            return device, "OpenVINO device set by configuration"
    return "CPU", "OpenVINO CPU plugin"


class OpenVinoSession:
    """A model compiled by OpenVINO for one device; one infer request, used under a lock."""

    backend = "openvino"

    def __init__(
        self,
        compiled: Any,
        *,
        path: Path,
        sha256: str,
        device: str,
        reason: str,
        threads: int,
        budget: CpuBudget,
        config: SessionConfig,
        optimized_cache: str,
    ) -> None:
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()
        self.path = path
        self.sha256 = sha256
        self.device = device
        self.choice = ProviderChoice((f"openvino:{device}",), reason)
        self.threads = threads
        self.budget = budget
        self.config = config
        self.optimized_cache = optimized_cache
        self.load_seconds = 0.0
        self.inputs = tuple(_spec(p) for p in compiled.inputs)
        self.outputs = tuple(_spec(p) for p in compiled.outputs)
        self._input_by_name = {s.name: s for s in self.inputs}
        self._output_names = [s.name for s in self.outputs]

    @property
    def providers(self) -> tuple[str, ...]:
        return self.choice.providers

    def validate(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> None:
        check_feeds(self._input_by_name, self._output_names, feeds, outputs)

    def run(
        self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        names = list(outputs) if outputs else self._output_names
        try:
            with self._lock:
                self._request.infer({k: np.ascontiguousarray(v) for k, v in feeds.items()})
                return {n: np.array(self._request.get_tensor(n).data, copy=True) for n in names}
        except (RuntimeError, TypeError, ValueError) as exc:
            text = _message(exc)
            if "shape" in text.lower() or "precision" in text.lower() or "type" in text.lower():
                raise InferInputError(f"OpenVINO rejected the input: {text}", code="infer.rejected") from exc
            raise InferRunError(f"OpenVINO failed: {text}") from exc


class OpenVinoBackend:
    """Compiles ``.onnx`` files with OpenVINO."""

    name = "openvino"

    def __init__(self, core_factory: Callable[[], Any] = ov.Core) -> None:
        self._core_factory = core_factory

    def load(
        self,
        path: Path,
        config: SessionConfig,
        *,
        budget_reader: Callable[[], CpuBudget],
        proc: Path,
    ) -> OpenVinoSession:
        del proc
        started = time.perf_counter()
        sha = model_sha256(path)
        budget = budget_reader()
        threads = config.intra_op_threads or budget.threads
        core = self._core_factory()
        device, reason = _device(config, list(core.available_devices))
        properties: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if device == "CPU":
            properties["INFERENCE_NUM_THREADS"] = threads
            properties["NUM_STREAMS"] = 1
            # bf16 on CPUs that have it would move outputs by ~1e-2; keep ONNX Runtime's numbers.
            properties["INFERENCE_PRECISION_HINT"] = "f32"
        cache_state = "off"
        if config.cache_dir is not None:
            cache = (
                config.cache_dir
                / "openvino"
                / hashlib.sha256(f"{sha}|{ov.__version__}".encode()).hexdigest()[:16]
            )
            cache.mkdir(parents=True, exist_ok=True)
            properties["CACHE_DIR"] = str(cache)
            cache_state = "hit" if any(cache.glob("*.blob")) else "written"
        try:
            compiled = core.compile_model(str(path), device, properties)
        except RuntimeError as exc:
            raise ModelLoadError(f"OpenVINO cannot load {path}: {_message(exc)}", path=str(path)) from exc
        session = OpenVinoSession(
            compiled,
            path=path,
            sha256=sha,
            device=device,
            reason=f"{reason}, {threads} threads",
            threads=threads,
            budget=budget,
            config=config,
            optimized_cache=cache_state,
        )
        if config.warmup:
            # warm-up is best effort; real requests report their own errors
            with contextlib.suppress(InferInputError, InferRunError):
                session.run(sample_inputs(session.inputs))
        session.load_seconds = time.perf_counter() - started
        return session

    def version(self) -> str:
        return str(ov.__version__)


BACKEND = OpenVinoBackend()
