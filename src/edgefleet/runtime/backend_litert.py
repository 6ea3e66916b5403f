"""The LiteRT backend: ``.tflite`` models on LiteRT (``ai-edge-litert``), XNNPACK or a delegate.

Without delegates the interpreter runs on the CPU through XNNPACK with the CPU budget's threads.
External delegates are named (``edgetpu`` for Coral, ``vx`` for NXP i.MX, ``teflon`` for mainline
Rockchip/Amlogic NPUs) or given as a library path; ``edgefleet probe`` lists which are present
(``tflite:libedgetpu``, ``tflite:teflon``). A delegate that cannot be loaded is a
:class:`~edgefleet.runtime.errors.DelegateError` (``runtime.delegate_load_failed``), unless
``allow_cpu_fallback`` says the CPU may run the model instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
from ai_edge_litert import interpreter as litert

from edgefleet.probe.cpu_budget import CpuBudget
from edgefleet.runtime.datatypes import from_numpy
from edgefleet.runtime.errors import DelegateError, InferInputError, InferRunError, ModelLoadError
from edgefleet.runtime.providers import ProviderChoice
from edgefleet.runtime.session import (
    SessionConfig,
    TensorSpec,
    check_feeds,
    model_sha256,
    sample_inputs,
)

__all__ = [
    "BACKEND",
    "DELEGATE_LIBRARIES",
    "LiteRtBackend",
    "LiteRtSession",
    "check_delegate_library",
    "delegate_library",
]

log = logging.getLogger(__name__)

DELEGATE_LIBRARIES: Final[dict[str, str]] = {
    "edgetpu": "libedgetpu.so.1",
    "coral": "libedgetpu.so.1",
    "vx": "libvx_delegate.so",
    "imx": "libvx_delegate.so",
    "teflon": "libteflon.so",
    "ethos-u": "libethosu_delegate.so",
}
"""Delegate names → the shared library the dynamic loader finds."""


def delegate_library(name: str) -> str:
    """The library to load for delegate ``name``: a known name's soname, else ``name`` itself."""
    return DELEGATE_LIBRARIES.get(name.strip().lower(), name.strip())


def check_delegate_library(library: str, dlopen: Callable[[str], Any] = ctypes.CDLL) -> None:
    """Raise ``OSError`` unless ``library`` loads and exports the external-delegate entry point.

    Checked before LiteRT sees the library, so a file that is not a delegate fails cleanly.
    """
    handle = dlopen(library)
    if not hasattr(handle, "tflite_plugin_create_delegate"):
        raise OSError(f"{library} is not a LiteRT delegate (no tflite_plugin_create_delegate symbol)")


def _message(exc: Exception) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0][:500] if lines else type(exc).__name__


def _spec(detail: Mapping[str, Any]) -> TensorSpec:
    dtype = np.dtype(detail["dtype"])
    signature = detail.get("shape_signature")
    dims = tuple(int(d) for d in (signature if signature is not None else detail["shape"]))
    shape = tuple(d if d >= 0 else -1 for d in dims)
    return TensorSpec(str(detail["name"]), from_numpy(dtype) or str(dtype), shape, shape)


class LiteRtSession:
    """A LiteRT interpreter; runs one request at a time (interpreters are not thread-safe)."""

    backend = "litert"

    def __init__(
        self,
        interpreter: Any,
        *,
        path: Path,
        sha256: str,
        choice: ProviderChoice,
        threads: int,
        budget: CpuBudget,
        config: SessionConfig,
    ) -> None:
        self._interpreter = interpreter
        self._lock = threading.Lock()
        self.path = path
        self.sha256 = sha256
        self.choice = choice
        self.threads = threads
        self.budget = budget
        self.config = config
        self.optimized_cache = "off"
        self.load_seconds = 0.0
        inputs = interpreter.get_input_details()
        outputs = interpreter.get_output_details()
        self.inputs = tuple(_spec(d) for d in inputs)
        self.outputs = tuple(_spec(d) for d in outputs)
        self._input_index = {str(d["name"]): int(d["index"]) for d in inputs}
        self._output_index = {str(d["name"]): int(d["index"]) for d in outputs}
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
        it = self._interpreter
        with self._lock:
            try:
                resized = False
                for name, array in feeds.items():
                    index = self._input_index[name]
                    current = tuple(int(d) for d in it.get_input_details()[self._position(index)]["shape"])
                    if current != tuple(array.shape):
                        it.resize_tensor_input(index, list(array.shape))
                        resized = True
                if resized:
                    it.allocate_tensors()
                for name, array in feeds.items():
                    it.set_tensor(self._input_index[name], np.ascontiguousarray(array))
            except (ValueError, KeyError) as exc:
                raise InferInputError(
                    f"LiteRT rejected the input: {_message(exc)}", code="infer.rejected"
                ) from exc
            try:
                it.invoke()
                return {n: np.array(it.get_tensor(self._output_index[n]), copy=True) for n in names}
            except (RuntimeError, ValueError) as exc:
                raise InferRunError(f"LiteRT failed: {_message(exc)}") from exc

    def _position(self, index: int) -> int:
        return list(self._input_index.values()).index(index)


class LiteRtBackend:
    """Loads ``.tflite`` files into LiteRT interpreters."""

    name = "litert"

    def __init__(
        self,
        interpreter: Callable[..., Any] = litert.Interpreter,
        load_delegate: Callable[..., Any] = litert.load_delegate,
        check_library: Callable[[str], None] = check_delegate_library,
    ) -> None:
        self._interpreter = interpreter
        self._load_delegate = load_delegate
        self._check_library = check_library

    def _delegates(self, config: SessionConfig) -> tuple[list[Any], list[str], str]:
        loaded: list[Any] = []
        names: list[str] = []
        notes: list[str] = []
        for name in config.delegates:
            library = delegate_library(name)
            try:
                self._check_library(library)
                loaded.append(self._load_delegate(library))
                names.append(f"litert:{name}")
            except (ValueError, OSError, RuntimeError, AttributeError) as exc:
                why = _message(exc)
                if not config.allow_cpu_fallback:
                    raise DelegateError(
                        f"LiteRT delegate {name!r} ({library}) cannot be loaded: {why}; "
                        "allow the CPU instead with --allow-cpu-fallback or runtime.allow_cpu_fallback",
                        delegate=name,
                        library=library,
                    ) from exc
                log.warning("delegate not loaded; CPU fallback", extra={"delegate": name, "error": why})
                notes.append(f"delegate {name} failed ({why}), CPU fallback allowed")
        return loaded, names, "; ".join(notes)

    def load(
        self,
        path: Path,
        config: SessionConfig,
        *,
        budget_reader: Callable[[], CpuBudget],
        proc: Path,
    ) -> LiteRtSession:
        del proc
        started = time.perf_counter()
        sha = model_sha256(path)
        budget = budget_reader()
        threads = config.intra_op_threads or budget.threads
        delegates, names, notes = self._delegates(config)
        try:
            interpreter = self._interpreter(
                model_path=str(path), num_threads=threads, experimental_delegates=delegates or None
            )
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"LiteRT cannot load {path}: {_message(exc)}", path=str(path)) from exc
        if names:
            reason = f"delegates {', '.join(n.split(':', 1)[1] for n in names)} loaded; XNNPACK for the rest"
        else:
            reason = notes or "no delegate asked for: XNNPACK on the CPU"
        choice = ProviderChoice((*names, "litert:xnnpack"), f"{reason}, {threads} threads")
        session = LiteRtSession(
            interpreter, path=path, sha256=sha, choice=choice, threads=threads, budget=budget, config=config
        )
        if config.warmup:
            # warm-up is best effort; real requests report their own errors
            with contextlib.suppress(InferInputError, InferRunError):
                session.run(sample_inputs(session.inputs))
        session.load_seconds = time.perf_counter() - started
        return session

    def version(self) -> str:
        return str(getattr(litert, "__version__", "") or "")


BACKEND = LiteRtBackend()
