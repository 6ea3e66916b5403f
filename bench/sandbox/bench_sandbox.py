"""Start-to-exec latency of the native sandbox vs a plain subprocess vs podman, and inference
latency inside a sandbox with a cpuset vs outside with the same CPU affinity. Side by side, one run.

    sudo .venv/bin/python bench/sandbox/bench_sandbox.py [--rounds 30] [--inferences 200]

Prints a markdown table (medians and p90 in milliseconds, ratios against the plain subprocess).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from edgefleet.sandbox import Isolation, Limits, Sandbox, SandboxSpec, UserId
from edgefleet.sandbox.podman import PodmanBackend, PodmanTarget

INFER = r"""
import json, statistics, sys, time
import numpy as np, onnxruntime as ort
opts = ort.SessionOptions(); opts.intra_op_num_threads = 1; opts.inter_op_num_threads = 1
s = ort.InferenceSession(sys.argv[1], opts, providers=["CPUExecutionProvider"])
i = s.get_inputs()[0]
x = np.random.default_rng(0).random([d if isinstance(d, int) else 1 for d in i.shape], dtype=np.float32)
for _ in range(20): s.run(None, {i.name: x})
t = []
for _ in range(int(sys.argv[2])):
    a = time.perf_counter(); s.run(None, {i.name: x}); t.append((time.perf_counter() - a) * 1000)
t.sort()
print(json.dumps({"median": statistics.median(t), "p90": t[int(len(t) * 0.9)]}))
"""


def stats(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]


def busybox_rootfs(base: Path) -> Path | None:
    if shutil.which("podman") is None or not Path("/bin/busybox").exists():
        return None
    root = base / "rootfs"
    for d in ("bin", "proc", "sys", "dev", "tmp", "etc"):
        (root / d).mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    (root / "bin" / "true").symlink_to("busybox")
    return root


def main() -> None:  # noqa: PLR0915 - one straight-line measurement script
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--podman-rounds", type=int, default=10)
    parser.add_argument("--inferences", type=int, default=200)
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="edgefleet-bench-"))
    base.chmod(0o755)
    parent = f"edgefleet-bench-{uuid.uuid4().hex[:8]}"
    sandbox = Sandbox(run_dir=base / "run", parent=parent)
    limits = Limits(cpus=1.0, memory_max=64 << 20, pids_max=64)
    rows: dict[str, list[float]] = {
        "subprocess exec": [],
        "subprocess run": [],
        "sandbox exec": [],
        "sandbox run": [],
    }
    try:
        for i in range(args.rounds):
            t0 = time.perf_counter()
            proc = subprocess.Popen(["/bin/true"])
            t1 = time.perf_counter()
            proc.wait()
            t2 = time.perf_counter()
            rows["subprocess exec"].append((t1 - t0) * 1000)
            rows["subprocess run"].append((t2 - t0) * 1000)
            spec = SandboxSpec(f"b{i}", ("/bin/true",), limits, Isolation(network="none"))
            t0 = time.perf_counter()
            sp = sandbox.start(spec)
            t1 = time.perf_counter()
            sp.wait()
            t2 = time.perf_counter()
            rows["sandbox exec"].append((t1 - t0) * 1000)
            rows["sandbox run"].append((t2 - t0) * 1000)
        rootfs = busybox_rootfs(base)
        if rootfs is not None:
            rows["podman run"] = []
            backend = PodmanBackend()
            for i in range(args.podman_rounds):
                spec = SandboxSpec(f"p{i}", ("/bin/true",), limits, Isolation(network="none"))
                t0 = time.perf_counter()
                backend.run(spec, PodmanTarget(rootfs=rootfs))
                rows["podman run"].append((time.perf_counter() - t0) * 1000)

        import onnx

        model = Path(onnx.__file__).parent / "backend/test/data/light/light_squeezenet.onnx"
        inference: dict[str, list[float]] = {"outside, affinity cpu 0": [], "sandbox, cpuset 0": []}
        log = base / "infer.log"
        for _ in range(2):
            out = subprocess.run(
                [sys.executable, "-c", INFER, str(model), str(args.inferences)],
                capture_output=True,
                text=True,
                check=True,
                preexec_fn=lambda: os.sched_setaffinity(0, {0}),
            )
            got = json.loads(out.stdout)
            inference["outside, affinity cpu 0"] += [got["median"], got["p90"]]
            spec = SandboxSpec(
                "infer",
                (sys.executable, "-c", INFER, str(model), str(args.inferences)),
                Limits(cpuset_cpus="0", memory_max=512 << 20),
                Isolation(network="none", user=UserId(0, 0, "root"), seccomp=True),
                env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "OMP_NUM_THREADS": "1"},  # noqa: S108 - private tmpfs
            )
            log.unlink(missing_ok=True)
            sandbox.start(spec, log=(log, 1 << 20, 1)).wait()
            got = json.loads(log.read_text().strip().splitlines()[-1])
            inference["sandbox, cpuset 0"] += [got["median"], got["p90"]]
    finally:
        sandbox.driver.prune()
        shutil.rmtree(base, ignore_errors=True)

    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, kernel {platform.release()}"
    )
    print(f"python {platform.python_version()}, cgroup v{sandbox.driver.version}, rounds {args.rounds}")
    if shutil.which("podman"):
        print(
            subprocess.run(
                ["podman", "--version"], capture_output=True, text=True, check=False
            ).stdout.strip()
        )
    print()
    print("| start to exec / run of /bin/true | median ms | p90 ms | median vs subprocess run |")
    print("|---|---|---|---|")
    ref = stats(rows["subprocess run"])[0]
    for name, samples in rows.items():
        med, p90 = stats(samples)
        print(f"| {name} | {med:.2f} | {p90:.2f} | {med / ref:.1f}x |")
    print()
    print("| squeezenet (light) inference, 1 thread | median ms | p90 ms |")
    print("|---|---|---|")
    for name, values in inference.items():
        medians, p90s = values[0::2], values[1::2]
        print(f"| {name} | {statistics.mean(medians):.2f} | {statistics.mean(p90s):.2f} |")


if __name__ == "__main__":
    main()
