"""The ONNX Runtime backend: one ONNX Runtime session, its signature in KServe terms, its tuning, ``run``.

Threads come from the CPU budget this process really has (:func:`read_cpu_budget`), never from
``os.cpu_count()``. Graph optimizations are saved once per (model, runtime version, providers,
level, hardware) under the cache directory and reloaded with optimizations off, so restarts
skip the optimizer. :class:`OnnxRuntimeBackend` puts :class:`ModelSession` behind the
:class:`~edgefleet.runtime.backend.Backend` interface.
"""

from __future__ import annotations

import hashlib
import logging
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from edgefleet.probe.cpu_budget import CpuBudget, read_cpu_budget
from edgefleet.runtime.datatypes import from_ort
from edgefleet.runtime.errors import InferInputError, InferRunError, ModelLoadError
from edgefleet.runtime.providers import (
    CPU,
    ProviderCache,
    ProviderChoice,
    candidates,
    hardware_fingerprint,
    pick_fastest,
    provider_options,
    resolve_providers,
)
from edgefleet.runtime.session import (
    OptLevel,
    SessionConfig,
    TensorSpec,
    check_feeds,
    model_sha256,
    sample_inputs,
    spinning_for,
)

__all__ = ["BACKEND", "ModelSession", "OnnxRuntimeBackend"]

log = logging.getLogger(__name__)

_LEVELS: Final[dict[str, Any]] = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def _spec(arg: Any) -> TensorSpec:
    dims = tuple(d if isinstance(d, int | str) else None for d in arg.shape)
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in dims)
    return TensorSpec(str(arg.name), from_ort(str(arg.type)) or str(arg.type), shape, dims)


def _options(config: SessionConfig, threads: int, level: OptLevel) -> Any:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = max(1, config.inter_op_threads)
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = _LEVELS[level]
    so.log_severity_level = 3
    spin = "1" if config.allow_spinning else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", spin)
    so.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return so


def _ort_message(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:500] if text else type(exc).__name__


class ModelSession:
    """A loaded ONNX model: ``inputs``/``outputs`` signatures, ``run``, and how it was built."""

    backend: str = "onnxruntime"

    def __init__(
        self,
        session: Any,
        *,
        path: Path,
        sha256: str,
        choice: ProviderChoice,
        threads: int,
        budget: CpuBudget,
        config: SessionConfig,
        optimized_cache: str,
        load_seconds: float,
    ) -> None:
        self._session = session
        self.path = path
        self.sha256 = sha256
        self.choice = choice
        self.threads = threads
        self.budget = budget
        self.config = config
        self.optimized_cache = optimized_cache
        """``hit`` (loaded a cached optimized graph), ``written``, or ``off``."""
        self.load_seconds = load_seconds
        self.inputs: tuple[TensorSpec, ...] = tuple(_spec(a) for a in session.get_inputs())
        self.outputs: tuple[TensorSpec, ...] = tuple(_spec(a) for a in session.get_outputs())
        self._input_by_name = {s.name: s for s in self.inputs}
        self._output_names = [s.name for s in self.outputs]

    @property
    def providers(self) -> tuple[str, ...]:
        """The providers the session really runs with (as ONNX Runtime reports them)."""
        return tuple(str(p) for p in self._session.get_providers())

    @classmethod
    def load(
        cls,
        path: Path | str,
        *,
        providers: Sequence[str] | str | None = None,
        threads: int | None = None,
        config: SessionConfig | None = None,
        budget_reader: Callable[[], CpuBudget] = read_cpu_budget,
        proc: Path = Path("/proc"),
    ) -> ModelSession:
        """Load ``path`` with ``config``; ``providers`` and ``threads`` override the config's fields.

        Raises :class:`ModelLoadError` for a file ONNX Runtime cannot load and
        :class:`~edgefleet.runtime.errors.ProviderError` for a provider this build lacks.
        """
        started = time.perf_counter()
        config = config or SessionConfig()
        path = Path(path)
        if providers is not None:
            names = (providers,) if isinstance(providers, str) else tuple(providers)
            config = _replace(config, providers=names)
        if threads is not None:
            config = _replace(config, intra_op_threads=threads)
        sha = model_sha256(path)
        budget = budget_reader()
        n_threads = config.intra_op_threads or budget.threads
        config = _replace(config, allow_spinning=spinning_for(config, budget))
        available = tuple(ort.get_available_providers())
        choice = resolve_providers(config.providers, available)
        if config.pick_fastest and not (config.providers and config.providers != ("auto",)):
            choice = cls._fastest(path, sha, config, n_threads, available, proc)
        session, cache_state = cls._build(path, sha, config, n_threads, choice.providers, available, proc)
        model = cls(
            session,
            path=path,
            sha256=sha,
            choice=choice,
            threads=n_threads,
            budget=budget,
            config=config,
            optimized_cache=cache_state,
            load_seconds=0.0,
        )
        if config.warmup:
            model._warmup()
        model.load_seconds = time.perf_counter() - started
        return model

    @staticmethod
    def _create(
        source: Path, options: Any, providers: Sequence[str], path: Path, cache_dir: Path | None = None
    ) -> Any:
        pairs = provider_options(providers, cache_dir)
        names = [name for name, _ in pairs]
        opts = [o for _, o in pairs]
        for o in opts:
            for key, value in o.items():
                if key.endswith(("_path", "cache_dir")):
                    Path(value).mkdir(parents=True, exist_ok=True)
        try:
            return ort.InferenceSession(
                str(source), sess_options=options, providers=names, provider_options=opts
            )
        except Exception as exc:
            raise ModelLoadError(
                f"ONNX Runtime cannot load {path}: {_ort_message(exc)}", path=str(path)
            ) from exc

    @classmethod
    def _build(  # noqa: PLR0917 - private helper; every argument is required
        cls,
        path: Path,
        sha: str,
        config: SessionConfig,
        threads: int,
        providers: Sequence[str],
        available: Sequence[str],
        proc: Path,
    ) -> tuple[Any, str]:
        if config.cache_dir is None or config.optimization_level == "disable" or tuple(providers) != (CPU,):
            # A graph with nodes compiled by an accelerator provider cannot be saved; those
            # providers keep their own caches (see provider_options).
            options = _options(config, threads, config.optimization_level)
            return cls._create(path, options, providers, path, config.cache_dir), "off"
        key_text = "|".join(
            [
                sha,
                ort.__version__,
                ",".join(providers),
                config.optimization_level,
                hardware_fingerprint(proc, available=available),
            ]
        )
        key = hashlib.sha256(key_text.encode()).hexdigest()[:32]
        cached = config.cache_dir / "optimized" / f"{key}.onnx"
        if cached.is_file():
            try:
                return cls._create(cached, _options(config, threads, "disable"), providers, path), "hit"
            except ModelLoadError:
                log.warning("optimized model cache entry unusable; rebuilding", extra={"path": str(cached)})
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.stem}.{os.getpid()}.tmp.onnx")
        options = _options(config, threads, config.optimization_level)
        options.optimized_model_filepath = str(tmp)
        session = cls._create(path, options, providers, path)
        try:
            tmp.replace(cached)
        except OSError:
            tmp.unlink(missing_ok=True)
            return session, "off"
        return session, "written"

    @classmethod
    def _fastest(  # noqa: PLR0917 - private helper; every argument is required
        cls, path: Path, sha: str, config: SessionConfig, threads: int, available: Sequence[str], proc: Path
    ) -> ProviderChoice:
        def measure(option: tuple[str, ...]) -> float:
            options = _options(config, threads, config.optimization_level)
            session = cls._create(path, options, option, path, config.cache_dir)
            specs = tuple(_spec(a) for a in session.get_inputs())
            feeds = sample_inputs(specs)
            for _ in range(3):
                session.run(None, feeds)
            times = []
            for _ in range(10):
                t0 = time.perf_counter()
                session.run(None, feeds)
                times.append(time.perf_counter() - t0)
            return statistics.median(times)

        cache = ProviderCache(config.cache_dir / "providers.json") if config.cache_dir else None
        key = ProviderCache.key(sha, hardware_fingerprint(proc, available=available), ort.__version__)
        return pick_fastest(candidates(available), measure, cache=cache, cache_key=key)

    def _warmup(self) -> None:
        try:
            self._session.run(None, sample_inputs(self.inputs))
        except Exception as exc:  # noqa: BLE001 - warm-up is best effort; real requests report their own errors
            log.info("warm-up skipped", extra={"model": str(self.path), "error": _ort_message(exc)})

    def validate(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> None:
        """Check names, datatypes and shapes against the signature; raise :class:`InferInputError`."""
        check_feeds(self._input_by_name, self._output_names, feeds, outputs)

    def run(
        self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Run the model on validated ``feeds``; returns the requested outputs (all when ``None``)."""
        names = list(outputs) if outputs else self._output_names
        try:
            results = self._session.run(names, dict(feeds))
        except ort_state.InvalidArgument as exc:
            raise InferInputError(
                f"ONNX Runtime rejected the input: {_ort_message(exc)}", code="infer.rejected"
            ) from exc
        except Exception as exc:
            raise InferRunError(f"ONNX Runtime failed: {_ort_message(exc)}") from exc
        return {n: np.asarray(r) for n, r in zip(names, results, strict=True)}


def _replace(config: SessionConfig, **changes: Any) -> SessionConfig:
    from dataclasses import replace

    return replace(config, **changes)


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
