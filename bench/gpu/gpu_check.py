"""Time the benchmark models on ONNX Runtime's CPU, CUDA and TensorRT providers; write JSON + markdown.

Run by ``run_gpu_check.sh`` inside a temporary venv that has ``onnxruntime-gpu`` (and TensorRT's
libraries); needs only numpy and onnxruntime. Providers this build or machine lacks are recorded as
``unavailable`` with the reason, never silently dropped.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

PROVIDERS = ("CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider")


def _gpu_name() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "no NVIDIA GPU visible"


def _session(model: Path, provider: str, cache: Path) -> Any:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if provider == "TensorrtExecutionProvider":
        cache.mkdir(parents=True, exist_ok=True)
        providers: list[Any] = [
            (
                provider,
                {
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(cache),
                    "trt_timing_cache_enable": True,
                    "trt_fp16_enable": False,
                },
            ),
            "CUDAExecutionProvider",
            "CPUExecutionProvider",
        ]
    else:
        providers = [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]
    return ort.InferenceSession(str(model), options, providers=providers)


def _time(session: Any, feeds: dict[str, np.ndarray], seconds: float) -> dict[str, float]:
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 10:
        t0 = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1000.0)
    times.sort()
    return {
        "runs": len(times),
        "p50_ms": round(statistics.median(times), 3),
        "p90_ms": round(times[int(len(times) * 0.9) - 1], 3),
        "mean_ms": round(statistics.fmean(times), 3),
    }


def measure(
    model: Path, shape: tuple[int, ...], provider: str, cache: Path, seconds: float
) -> dict[str, Any]:
    if provider not in ort.get_available_providers():
        return {"status": "unavailable", "reason": f"{provider} not in this onnxruntime build"}
    started = time.perf_counter()
    try:
        session = _session(model, provider, cache)
        name = session.get_inputs()[0].name
        rng = np.random.default_rng(0)
        one = {name: rng.random(shape, dtype=np.float32)}
        session.run(None, one)  # builds TensorRT engines / CUDA kernels
        ready_s = time.perf_counter() - started
        for _ in range(5):
            session.run(None, one)
        latency = _time(session, one, seconds)
        batch = {name: rng.random((8, *shape[1:]), dtype=np.float32)}
        session.run(None, batch)
        batched = _time(session, batch, seconds)
    except Exception as exc:  # noqa: BLE001 - a provider that fails is a result, not a crash
        return {"status": "failed", "reason": str(exc).strip().splitlines()[0][:300]}
    return {
        "status": "ok",
        "providers": session.get_providers(),
        "first_run_s": round(ready_s, 2),
        "batch1": latency,
        "batch8": batched,
        "throughput_items_per_s": round(8000.0 / batched["mean_ms"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", action="append", required=True, help="NAME=PATH=1x3x224x224")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "gpu": _gpu_name(),
        "cpu": platform.processor() or platform.machine(),
        "onnxruntime": ort.__version__,
        "available_providers": ort.get_available_providers(),
        "results": {},
    }
    for spec in args.model:
        name, path, dims = spec.split("=")
        shape = tuple(int(d) for d in dims.split("x"))
        report["results"][name] = {
            p: measure(Path(path), shape, p, args.out / "trt-cache" / name, args.seconds) for p in PROVIDERS
        }
        print(name, json.dumps(report["results"][name]), flush=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# GPU check: {report['gpu']}",
        "",
        f"onnxruntime {report['onnxruntime']} · providers {', '.join(report['available_providers'])}",
        "",
        "| model | provider | first run s | p50 ms (batch 1) | p90 ms | items/s (batch 8) |",
        "|---|---|---|---|---|---|",
    ]
    for name, by_provider in report["results"].items():
        for provider, r in by_provider.items():
            if r["status"] != "ok":
                lines.append(f"| {name} | {provider} | {r['status']}: {r['reason']} | | | |")
                continue
            lines.append(
                f"| {name} | {provider} | {r['first_run_s']} | {r['batch1']['p50_ms']} | "
                f"{r['batch1']['p90_ms']} | {r['throughput_items_per_s']} |"
            )
    (args.out / "gpu_check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
