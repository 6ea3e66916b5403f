"""What every backend shares: the session settings, tensor signatures, sample inputs, checks.

The ONNX Runtime session itself lives in :mod:`edgefleet.runtime.backend_onnxruntime`
(``ModelSession`` is still importable from here), LiteRT and OpenVINO in their own backend files;
:mod:`edgefleet.runtime.backend` picks one by model file type. Nothing here imports a runtime, so a
device with only LiteRT installed needs no ONNX Runtime.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np

from edgefleet.probe.cpu_budget import CpuBudget
from edgefleet.runtime.datatypes import from_numpy, to_numpy
from edgefleet.runtime.errors import InferInputError, ModelLoadError

__all__ = [
    "OptLevel",
    "SessionConfig",
    "TensorSpec",
    "check_feeds",
    "file_sha256",
    "sample_inputs",
    "spinning_for",
]

OptLevel = Literal["disable", "basic", "extended", "all"]

_SAMPLE_DIM: Final = 224


@dataclass(frozen=True)
class SessionConfig:
    """How to build a session. ``None`` values are decided from the machine."""

    providers: tuple[str, ...] | None = None
    """Provider names or aliases in priority order; ``None`` or ``("auto",)`` ranks what is available."""
    pick_fastest: bool = False
    """Time each candidate provider on the model and keep the fastest (cached per model and device)."""
    intra_op_threads: int | None = None
    """Threads per operator; ``None`` = the CPU budget (affinity, cpuset, cgroup quota)."""
    inter_op_threads: int = 1
    allow_spinning: bool | None = None
    """Worker threads spin between operators: lower latency, more CPU burnt while waiting.
    ``None``: on, unless a cgroup CPU quota bounds the process (spinning would spend the quota)."""
    optimization_level: OptLevel = "all"
    cache_dir: Path | None = None
    """Where optimized models and the provider choice are cached; ``None`` disables both caches."""
    warmup: bool = True
    """Run once on zeros after loading so the first request does not pay the allocations."""
    backend: str = "auto"
    """``onnxruntime``, ``openvino``, ``litert`` or ``auto`` (by the model file's type; see
    :mod:`edgefleet.runtime.backend`)."""
    delegates: tuple[str, ...] = ()
    """LiteRT external delegates by name (``edgetpu``, ``vx``, ``teflon``) or library path."""
    allow_cpu_fallback: bool = False
    """When a delegate cannot be loaded, run on the CPU (XNNPACK) instead of failing."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: name, KServe datatype and shape (``-1`` for a dynamic dimension)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    dims: tuple[str | int | None, ...] = field(default=(), compare=False)

    @property
    def dtype(self) -> np.dtype[np.generic]:
        dt = to_numpy(self.datatype)
        return dt if dt is not None else np.dtype(np.object_)


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def model_sha256(path: Path) -> str:
    """The sha256 of a model file; an unreadable file is a :class:`ModelLoadError` naming it."""
    try:
        return file_sha256(path)
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {path}: {exc.strerror or exc}", path=str(path)) from exc


def sample_inputs(specs: Sequence[TensorSpec], batch: int = 1) -> dict[str, np.ndarray]:
    """Inputs that fit ``specs``: dynamic first dimension = ``batch``, other dynamic ones 224."""
    out: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(0)
    for s in specs:
        shape = (
            tuple(d if d >= 0 else (batch if i == 0 else _SAMPLE_DIM) for i, d in enumerate(s.shape)) or ()
        )
        if s.datatype == "BYTES":
            out[s.name] = np.full(shape, "", dtype=np.object_)
        elif s.dtype.kind == "f":
            out[s.name] = rng.random(shape, dtype=np.float32).astype(s.dtype)
        else:
            out[s.name] = np.zeros(shape, dtype=s.dtype)
    return out


def spinning_for(config: SessionConfig, budget: CpuBudget) -> bool:
    """Whether threads spin: as configured, else on unless a CPU quota is what bounds the budget."""
    if config.allow_spinning is not None:
        return config.allow_spinning
    return budget.quota is None or budget.quota >= len(budget.cpus)


def check_feeds(
    input_by_name: Mapping[str, TensorSpec],
    output_names: Sequence[str],
    feeds: Mapping[str, np.ndarray],
    outputs: Sequence[str] | None = None,
) -> None:
    """Check names, datatypes and shapes against the signature; raise :class:`InferInputError`."""
    for name, array in feeds.items():
        spec = input_by_name.get(name)
        if spec is None:
            raise InferInputError(
                f"model has no input {name!r}; inputs: {', '.join(input_by_name)}",
                code="infer.unknown_input",
                tensor=name,
                expected=list(input_by_name),
            )
        if array.dtype != spec.dtype and not (spec.datatype == "BYTES" and array.dtype.kind in "OSU"):
            raise InferInputError(
                f"input {name!r} must be {spec.datatype}",
                code="infer.dtype_mismatch",
                tensor=name,
                expected=spec.datatype,
                got=from_numpy(array.dtype) or str(array.dtype),
            )
        if len(array.shape) != len(spec.shape) or any(
            e >= 0 and e != g for e, g in zip(spec.shape, array.shape, strict=True)
        ):
            raise InferInputError(
                f"input {name!r} has shape {list(array.shape)}; expected {list(spec.shape)} (-1 = any size)",
                code="infer.shape_mismatch",
                tensor=name,
                expected=list(spec.shape),
                got=list(array.shape),
            )
    missing = [n for n in input_by_name if n not in feeds]
    if missing:
        raise InferInputError(
            f"missing input {missing[0]!r}; the model needs {', '.join(input_by_name)}",
            code="infer.missing_input",
            tensor=missing[0],
            expected=list(input_by_name),
        )
    for name in outputs or ():
        if name not in output_names:
            raise InferInputError(
                f"model has no output {name!r}; outputs: {', '.join(output_names)}",
                code="infer.unknown_output",
                tensor=name,
                expected=output_names,
            )


def __getattr__(name: str) -> Any:
    """``ModelSession`` moved to :mod:`edgefleet.runtime.backend_onnxruntime`; imported on first use."""
    if name == "ModelSession":
        from edgefleet.runtime.backend_onnxruntime import ModelSession

        return ModelSession
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
