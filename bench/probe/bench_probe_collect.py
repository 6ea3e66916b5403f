"""How long `collect()` takes: this machine, without runtime look-ups, with ctypes' find_library, a fixture.

Run: .venv/bin/python bench/probe/bench_probe_collect.py [rounds]
ONNX Runtime's first import is measured apart (a fresh interpreter), since it dominates a cold probe.
"""

from __future__ import annotations

import ctypes.util
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from edgefleet.probe.inventory import collect
from edgefleet.probe.paths import ProbePaths
from edgefleet.testing.fake_devices import x86_intel_npu_uvc


def _median_ms(run: object, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    cold = subprocess.run(
        [
            sys.executable,
            "-c",
            "import time; s = time.perf_counter(); import onnxruntime; print(time.perf_counter() - s)",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    collect()  # warm: onnxruntime imported once per process
    real = _median_ms(collect, rounds)
    no_runtimes = _median_ms(lambda: collect(replace(ProbePaths(), find_module=lambda _: False)), rounds)
    ldconfig = _median_ms(
        lambda: collect(replace(ProbePaths(), find_library=ctypes.util.find_library)), rounds
    )
    with tempfile.TemporaryDirectory() as tmp:
        paths = x86_intel_npu_uvc(Path(tmp)).probe_paths()
        fixture = _median_ms(lambda: collect(paths), rounds)
    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}")
    print(f"rounds: {rounds} (median)")
    if cold.returncode == 0:
        print(f"first `import onnxruntime` in a fresh interpreter: {float(cold.stdout) * 1000:.0f} ms")
    print(f"collect() on this machine, warm:            {real:.1f} ms")
    print(f"collect() without runtime look-ups:         {no_runtimes:.1f} ms  ({real / no_runtimes:.2f}x)")
    print(f"collect() with ctypes.util.find_library:    {ldconfig:.1f} ms  ({ldconfig / real:.2f}x)")
    print(f"collect() on the x86 NPU + camera fixture:  {fixture:.1f} ms")


if __name__ == "__main__":
    main()
