"""Execution-provider choice: an explicit list, ``auto`` (ranked), or the fastest one measured.

``auto`` ranks what this ONNX Runtime build offers, accelerators first, CPU last (ONNX Runtime
assigns each node to the first provider in the list that supports it). ``pick_fastest`` times each
candidate on the model and remembers the winner per (model sha256, hardware, ONNX Runtime version)
in a small JSON file, so the measurement is paid once per device and model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from edgefleet.runtime.errors import ProviderError

__all__ = [
    "ALIASES",
    "CPU",
    "RANKING",
    "ProviderCache",
    "ProviderChoice",
    "candidates",
    "hardware_fingerprint",
    "pick_fastest",
    "provider_options",
    "resolve_providers",
]

log = logging.getLogger(__name__)

CPU: Final = "CPUExecutionProvider"

RANKING: Final[tuple[str, ...]] = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "MIGraphXExecutionProvider",
    "OpenVINOExecutionProvider",
    "QNNExecutionProvider",
    "CoreMLExecutionProvider",
    "DnnlExecutionProvider",
    "XnnpackExecutionProvider",
    "ACLExecutionProvider",
    "ArmNNExecutionProvider",
    CPU,
)
"""Providers ``auto`` may use, best first. Others (Azure...) are used only when named."""

ALIASES: Final[dict[str, str]] = {
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dnnl": "DnnlExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "acl": "ACLExecutionProvider",
    "armnn": "ArmNNExecutionProvider",
    "cpu": CPU,
}


@dataclass(frozen=True)
class ProviderChoice:
    """The providers a session uses, in priority order, and why they were chosen."""

    providers: tuple[str, ...]
    reason: str


def _canonical(name: str) -> str:
    return ALIASES.get(name.strip().lower(), name.strip())


def resolve_providers(requested: Sequence[str] | str | None, available: Sequence[str]) -> ProviderChoice:
    """Turn ``requested`` (names, aliases such as ``cuda``, or ``auto``/``None``) into a provider list.

    An explicit list is kept in its order, must name only providers in ``available`` and gets the
    CPU provider appended as the fallback. Raises :class:`ProviderError` naming what is available.
    """
    names = [requested] if isinstance(requested, str) else list(requested or [])
    names = [n for part in names for n in part.split(",") if n.strip()]
    if not names or [n.strip().lower() for n in names] == ["auto"]:
        ranked = tuple(p for p in RANKING if p in available)
        if CPU not in ranked:
            ranked = (*ranked, CPU)
        return ProviderChoice(ranked, f"auto: best available of {', '.join(available)}")
    chosen: list[str] = []
    for raw in names:
        if raw.strip().lower() == "auto":
            raise ProviderError(
                "'auto' cannot be combined with explicit providers", field="providers", requested=names
            )
        name = _canonical(raw)
        if name not in available:
            raise ProviderError(
                f"execution provider {raw!r} is not available in this ONNX Runtime build; "
                f"available: {', '.join(available)}",
                field="providers",
                provider=raw,
                available=list(available),
            )
        if name not in chosen:
            chosen.append(name)
    if CPU not in chosen:
        chosen.append(CPU)
    return ProviderChoice(tuple(chosen), "explicit")


def provider_options(providers: Sequence[str], cache_dir: Path | None) -> list[tuple[str, dict[str, str]]]:
    """Providers with their options: the compiling providers keep their caches under ``cache_dir``.

    TensorRT engines and OpenVINO compiled blobs take seconds to minutes to build; cached, a
    restart reuses them (the graph-level optimized-model cache cannot hold compiled nodes).
    """
    out: list[tuple[str, dict[str, str]]] = []
    for name in providers:
        options: dict[str, str] = {}
        if cache_dir is not None and name == "TensorrtExecutionProvider":
            path = str(cache_dir / "tensorrt")
            options = {
                "trt_engine_cache_enable": "True",
                "trt_engine_cache_path": path,
                "trt_timing_cache_enable": "True",
                "trt_timing_cache_path": path,
            }
        elif cache_dir is not None and name == "OpenVINOExecutionProvider":
            options = {"cache_dir": str(cache_dir / "openvino")}
        out.append((name, options))
    return out


def candidates(available: Sequence[str]) -> list[tuple[str, ...]]:
    """What ``pick_fastest`` times: each ranked accelerator with CPU fallback, then CPU alone."""
    out: list[tuple[str, ...]] = [(p, CPU) for p in RANKING if p in available and p != CPU]
    out.append((CPU,))
    return out


def hardware_fingerprint(proc: Path = Path("/proc"), *, available: Sequence[str] = ()) -> str:
    """A short stable id of this machine's compute: architecture, CPU model, CPU flags, providers."""
    model, flags = "", ""
    try:
        for line in (proc / "cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "cpu model", "hardware") and not model:
                model = value.strip()
            elif key in ("flags", "features") and not flags:
                flags = value.strip()
    except OSError:
        pass
    text = "|".join([platform.machine(), model, flags, ",".join(sorted(available))])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ProviderCache:
    """The JSON file that remembers the fastest providers per (model, hardware, runtime version)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @staticmethod
    def key(model_sha256: str, hardware: str, ort_version: str) -> str:
        return f"{model_sha256}:{hardware}:{ort_version}"

    def _read(self) -> dict[str, dict[str, object]]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> tuple[str, ...] | None:
        entry = self._read().get(key)
        providers = entry.get("providers") if isinstance(entry, dict) else None
        if isinstance(providers, list) and all(isinstance(p, str) for p in providers):
            return tuple(providers)
        return None

    def put(self, key: str, providers: Sequence[str], timings_ms: dict[str, float | None]) -> None:
        data = self._read()
        data[key] = {"providers": list(providers), "timings_ms": timings_ms}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        tmp.replace(self.path)


def pick_fastest(
    options: Sequence[tuple[str, ...]],
    measure: Callable[[tuple[str, ...]], float],
    *,
    cache: ProviderCache | None = None,
    cache_key: str | None = None,
) -> ProviderChoice:
    """Time each option with ``measure`` (median seconds per run) and keep the fastest.

    A cached winner for ``cache_key`` is reused without measuring, as long as it is still one of
    ``options``. An option whose measurement raises is skipped (logged), never chosen.
    """
    if len(options) == 1:
        return ProviderChoice(options[0], "fastest: the only candidate in this build")
    if cache is not None and cache_key is not None:
        hit = cache.get(cache_key)
        if hit is not None and hit in options:
            return ProviderChoice(hit, f"fastest (cached in {cache.path})")
    timings: dict[str, float | None] = {}
    best: tuple[str, ...] | None = None
    best_s = float("inf")
    for option in options:
        label = ",".join(option)
        try:
            seconds = measure(option)
        except Exception as exc:  # noqa: BLE001 - a provider that cannot run the model is simply not a candidate
            log.warning("provider candidate failed", extra={"providers": label, "error": str(exc)})
            timings[label] = None
            continue
        timings[label] = round(seconds * 1000.0, 4)
        if seconds < best_s:
            best, best_s = option, seconds
    if best is None:
        raise ProviderError(
            "no execution provider could run the model", field="providers", tried=list(timings)
        )
    if cache is not None and cache_key is not None:
        cache.put(cache_key, best, timings)
    summary = ", ".join(f"{k}={v}ms" for k, v in timings.items())
    return ProviderChoice(best, f"fastest measured ({summary})")
