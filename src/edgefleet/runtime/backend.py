"""Execution backends behind one interface: a model file in, a session with a KServe signature out.

::

    onnxruntime   .onnx     ONNX Runtime and its execution providers   (backend_onnxruntime.py)
    openvino      .onnx     OpenVINO's own runtime, CPU/GPU/NPU plugins (backend_openvino.py)
    litert        .tflite   LiteRT, XNNPACK or an external delegate     (backend_litert.py)

Every session offers what the serving layer uses: ``inputs``/``outputs`` (:class:`TensorSpec`),
``validate``, ``run``, ``providers`` and ``choice`` (what runs it and why). ``auto`` picks the
backend from the file type (``.tflite`` → LiteRT, ``.onnx`` → ONNX Runtime); with ``pick_fastest``
and OpenVINO installed, an ``.onnx`` model is timed on both and the winner is cached per
(model, hardware, versions) next to the provider choice.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, Protocol

import numpy as np

from edgefleet.probe.cpu_budget import CpuBudget, read_cpu_budget
from edgefleet.runtime.errors import BackendError
from edgefleet.runtime.providers import ProviderCache, ProviderChoice, hardware_fingerprint, pick_fastest
from edgefleet.runtime.session import SessionConfig, TensorSpec, file_sha256, sample_inputs

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendChoice",
    "Session",
    "backend",
    "choose_backend",
    "installed",
    "load_model",
    "probe_accelerators",
]

log = logging.getLogger(__name__)

BACKENDS: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "onnxruntime": ("onnxruntime", (".onnx",)),
    "openvino": ("openvino", (".onnx",)),
    "litert": ("ai_edge_litert", (".tflite",)),
}
"""backend name → (the Python module it needs, the model file suffixes it runs)."""

_DISTRIBUTIONS: Final[dict[str, tuple[str, ...]]] = {
    "onnxruntime": ("onnxruntime", "onnxruntime-openvino", "onnxruntime-gpu"),
    "openvino": ("openvino",),
    "litert": ("ai-edge-litert",),
}


class Session(Protocol):
    """A loaded model as the serving layer sees it, whatever runs it."""

    backend: str
    path: Path
    sha256: str
    choice: ProviderChoice
    threads: int
    budget: CpuBudget
    config: SessionConfig
    optimized_cache: str
    load_seconds: float
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def providers(self) -> tuple[str, ...]: ...

    def validate(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> None: ...

    def run(
        self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]: ...


class Backend(Protocol):
    """Loads one kind of model file into a :class:`Session`."""

    name: str

    def load(
        self,
        path: Path,
        config: SessionConfig,
        *,
        budget_reader: Callable[[], CpuBudget],
        proc: Path,
    ) -> Session: ...

    def version(self) -> str: ...


@dataclass(frozen=True)
class BackendChoice:
    """The backend a model runs on and why."""

    name: str
    reason: str
    device: str | None = None
    """For ``openvino``: the device the probe found (``GPU``, ``NPU``); ``None`` = the CPU."""


def probe_accelerators() -> frozenset[str]:
    """``<kind>:<runtime>`` for each accelerator the probe finds here (``npu:onnxruntime:OpenVINO...``)."""
    from edgefleet.probe.accelerators import collect_accelerators
    from edgefleet.probe.paths import ProbePaths

    try:
        info = collect_accelerators(ProbePaths())
    except (OSError, ValueError) as exc:
        log.info("accelerator probe failed; choosing by file type only", extra={"error": str(exc)})
        return frozenset()
    return frozenset(f"{d.kind}:{r}" for d in info.devices or () for r in d.runtimes)


def installed(name: str, find_spec: Callable[[str], object | None] = importlib.util.find_spec) -> bool:
    """Whether backend ``name``'s Python module is importable here."""
    entry = BACKENDS.get(name)
    return entry is not None and find_spec(entry[0]) is not None


def backend(name: str) -> Backend:
    """The backend called ``name``; :class:`BackendError` when unknown or not installed."""
    if name not in BACKENDS:
        raise BackendError(
            f"unknown backend {name!r}; known: auto, {', '.join(BACKENDS)}", field="backend", backend=name
        )
    if not installed(name):
        raise BackendError(
            f"backend {name!r} is not installed (pip install {_DISTRIBUTIONS[name][0]})",
            backend=name,
        )
    module = importlib.import_module(f"edgefleet.runtime.backend_{name}")
    found: Backend = module.BACKEND
    return found


def backend_version(name: str) -> str:
    """The installed version of backend ``name``'s distribution (``?`` when unknown)."""
    for dist in _DISTRIBUTIONS.get(name, ()):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "?"


def _explicit_providers(config: SessionConfig) -> bool:
    return bool(config.providers) and config.providers != ("auto",)


def choose_backend(
    path: Path,
    config: SessionConfig,
    *,
    is_installed: Callable[[str], bool] = installed,
    accelerators: Callable[[], frozenset[str]] = probe_accelerators,
) -> BackendChoice:
    """Which backend runs ``path`` under ``config`` (without timing anything).

    ``auto``: ``.tflite`` → LiteRT; ``.onnx`` → OpenVINO on the Intel GPU/NPU the probe found when
    OpenVINO is installed and no providers were named, else ONNX Runtime (whose ``auto`` providers
    rank CUDA/TensorRT and the other accelerators it was built with).

    Raises :class:`BackendError` for a backend that cannot run this file type or is missing.
    """
    suffix = path.suffix.lower()
    fits = [name for name, (_, suffixes) in BACKENDS.items() if suffix in suffixes]
    if not fits:
        known = sorted({s for _, suffixes in BACKENDS.values() for s in suffixes})
        raise BackendError(
            f"no backend runs {path.name}: model files must end in {', '.join(known)}",
            code="runtime.unsupported_model_type",
            path=str(path),
        )
    wanted = config.backend or "auto"
    if wanted != "auto":
        if wanted not in BACKENDS:
            raise BackendError(
                f"unknown backend {wanted!r}; known: auto, {', '.join(BACKENDS)}", field="backend"
            )
        if wanted not in fits:
            raise BackendError(
                f"backend {wanted!r} cannot run {path.name}; for {suffix} use {', '.join(fits)}",
                code="runtime.backend_mismatch",
                field="backend",
                path=str(path),
            )
        if not is_installed(wanted):
            raise BackendError(
                f"backend {wanted!r} is not installed (pip install {_DISTRIBUTIONS[wanted][0]})",
                backend=wanted,
            )
        return BackendChoice(wanted, "backend set by configuration")
    present = [name for name in fits if is_installed(name)]
    if "openvino" in present and not _explicit_providers(config):
        found = accelerators()
        for kind in ("npu", "gpu"):
            if f"{kind}:onnxruntime:OpenVINOExecutionProvider" in found:
                why = f"auto: the probe found an Intel {kind.upper()}, OpenVINO installed"
                return BackendChoice("openvino", why, kind.upper())
    if not present:
        raise BackendError(
            f"no backend for {suffix} models is installed (pip install {_DISTRIBUTIONS[fits[0]][0]})",
            path=str(path),
        )
    return BackendChoice(present[0], f"auto: {suffix} file, {present[0]} installed")


def load_model(
    path: Path | str,
    *,
    providers: Sequence[str] | str | None = None,
    threads: int | None = None,
    config: SessionConfig | None = None,
    budget_reader: Callable[[], CpuBudget] = read_cpu_budget,
    proc: Path = Path("/proc"),
    is_installed: Callable[[str], bool] = installed,
    accelerators: Callable[[], frozenset[str]] = probe_accelerators,
) -> Session:
    """Load ``path`` on the backend its type and ``config`` call for; the serving layer's loader.

    ``providers`` and ``threads`` override the config's fields, as in ``ModelSession.load``.
    """
    path = Path(path)
    config = config or SessionConfig()
    if providers is not None:
        config = replace(config, providers=(providers,) if isinstance(providers, str) else tuple(providers))
    if threads is not None:
        config = replace(config, intra_op_threads=threads)
    choice = choose_backend(path, config, is_installed=is_installed, accelerators=accelerators)
    if choice.device is not None:
        config = replace(config, providers=(f"openvino:{choice.device}",))
    candidates = [
        name
        for name, (_, suffixes) in BACKENDS.items()
        if path.suffix.lower() in suffixes and is_installed(name)
    ]
    if (
        config.pick_fastest
        and (config.backend or "auto") == "auto"
        and not _explicit_providers(config)
        and len(candidates) > 1
    ):
        return _fastest(path, config, candidates, budget_reader=budget_reader, proc=proc)
    session = backend(choice.name).load(path, config, budget_reader=budget_reader, proc=proc)
    return _with_reason(session, choice.reason)


def _with_reason(session: Session, reason: str) -> Session:
    session.choice = ProviderChoice(session.choice.providers, f"{reason}; {session.choice.reason}")
    return session


def time_session(session: Session, runs: int = 10) -> float:
    """Median seconds per run of ``session`` on sample inputs (after three warm-up runs)."""
    feeds = sample_inputs(session.inputs)
    for _ in range(3):
        session.run(feeds)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        session.run(feeds)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _fastest(
    path: Path,
    config: SessionConfig,
    candidates: Sequence[str],
    *,
    budget_reader: Callable[[], CpuBudget],
    proc: Path,
) -> Session:
    loaded: dict[str, Session] = {}

    def measure(option: tuple[str, ...]) -> float:
        session = backend(option[0]).load(path, config, budget_reader=budget_reader, proc=proc)
        loaded[option[0]] = session
        return time_session(session)

    versions = ",".join(f"{name}={backend_version(name)}" for name in candidates)
    cache = ProviderCache(config.cache_dir / "backends.json") if config.cache_dir else None
    key = ProviderCache.key(file_sha256(path), hardware_fingerprint(proc), versions)
    picked = pick_fastest([(name,) for name in candidates], measure, cache=cache, cache_key=key)
    name = picked.providers[0]
    session = loaded.get(name) or backend(name).load(path, config, budget_reader=budget_reader, proc=proc)
    return _with_reason(
        session,
        f"backend {name}, {picked.reason.replace('fastest', 'fastest of ' + '/'.join(candidates), 1)}",
    )
