"""Device metrics read from ``/proc`` and ``/sys`` (both injectable) and, where present, nvidia-smi.

=============================================  =====================================================
metric                                         source
=============================================  =====================================================
``edgefleet_device_cpu_seconds_total{mode}``   ``/proc/stat`` (all CPUs summed, USER_HZ → seconds)
``edgefleet_device_cpus``                      ``/proc/stat`` (cpuN lines)
``edgefleet_device_load1``                     ``/proc/loadavg``
``edgefleet_device_memory_bytes{kind}``        ``/proc/meminfo`` (total, available)
``edgefleet_device_temperature_celsius``       ``/sys/class/thermal/thermal_zone*/{temp,type}``;
  ``{zone, type}``                             nvidia-smi (``zone="nvidia<N>"``)
``edgefleet_device_power_watts{sensor,input}``  ``/sys/class/hwmon/hwmon*/power*_{average,input}`` (µW)
``edgefleet_device_accelerator_utilization``   Jetson ``.../17000000.gpu/load`` (per mille), DRM
  ``_ratio{accelerator}``                      ``card*/device/gpu_busy_percent``, nvidia-smi
``edgefleet_device_accelerator_power_watts``   DRM ``card*/device/hwmon/hwmon*/power1_*``, nvidia-smi
``edgefleet_device_accelerator_busy_seconds``  Intel NPU ``/sys/class/accel/accel*/device/npu_busy_time_us``
  ``_total{accelerator}``
``edgefleet_device_accelerator_memory_bytes``  nvidia-smi (``kind``: used, total)
  ``{accelerator, kind}``
=============================================  =====================================================

A file that is missing or unreadable leaves its metric out; nothing here raises.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from edgefleet.agent.exposition import Family
from edgefleet.telemetry.metrics import metric_name

__all__ = ["DeviceMetrics", "nvidia_smi_runner"]

CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
JETSON_LOAD = (
    "devices/platform/bus@0/17000000.gpu/load",
    "devices/platform/17000000.gpu/load",
    "devices/gpu.0/load",
)
NVIDIA_QUERY = "index,utilization.gpu,power.draw,temperature.gpu,memory.used,memory.total"

Runner = Callable[[], str | None]


def nvidia_smi_runner(binary: str | None = None, timeout: float = 5.0) -> Runner | None:
    """A function that runs ``nvidia-smi --query-gpu=...``; None when there is no nvidia-smi."""
    path = binary or shutil.which("nvidia-smi")
    if path is None:
        return None

    def run() -> str | None:
        try:
            out = subprocess.run(
                [path, f"--query-gpu={NVIDIA_QUERY}", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout if out.returncode == 0 else None

    return run


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _number(path: Path) -> float | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return float(text.split()[0])
    except (ValueError, IndexError):
        return None


class DeviceMetrics:
    """Reads the device's metrics on every :meth:`collect` (nvidia-smi at most every ``gpu_every_s``)."""

    def __init__(
        self,
        *,
        proc: Path = Path("/proc"),
        sys: Path = Path("/sys"),
        nvidia_smi: Runner | None = None,
        gpu_every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        clk_tck: int | None = None,
    ) -> None:
        self.proc, self.sys = proc, sys
        self._nvidia = nvidia_smi
        self._gpu_every = gpu_every_s
        self._clock = clock
        self._gpu_at: float | None = None
        self._gpu_text: str | None = None
        self._tck = clk_tck or os.sysconf("SC_CLK_TCK")

    def collect(self) -> list[Family]:
        fams = [*self._cpu(), self._load(), self._memory(), self._temperatures(), self._power()]
        fams += self._accelerators()
        return [f for f in fams if f.samples]

    # -- /proc ---------------------------------------------------------------------------------------

    def _cpu(self) -> tuple[Family, Family]:
        fam = Family(
            metric_name("device", "cpu", "seconds", counter=True),
            "counter",
            "CPU time of all CPUs by mode (/proc/stat)",
        )
        count = Family(metric_name("device", "cpus"), "gauge", "CPUs the kernel reports")
        text = _read(self.proc / "stat")
        if text is None:
            return fam, count
        n = 0
        for line in text.splitlines():
            parts = line.split()
            if parts and parts[0] == "cpu":
                for mode, ticks in zip(CPU_MODES, parts[1:], strict=False):
                    with contextlib.suppress(ValueError):
                        fam.add(int(ticks) / self._tck, mode=mode)
            elif parts and parts[0].startswith("cpu") and parts[0][3:].isdigit():
                n += 1
        if n:
            count.add(n)
        return fam, count

    def _load(self) -> Family:
        fam = Family(metric_name("device", "load1"), "gauge", "1-minute load average")
        text = _read(self.proc / "loadavg")
        with contextlib.suppress(ValueError, IndexError, AttributeError):
            fam.add(float((text or "").split()[0]))
        return fam

    def _memory(self) -> Family:
        fam = Family(
            metric_name("device", "memory", "bytes"), "gauge", "Device memory by kind (/proc/meminfo)"
        )
        mem: dict[str, int] = {}
        for line in (_read(self.proc / "meminfo") or "").splitlines():
            key, _, rest = line.partition(":")
            with contextlib.suppress(ValueError, IndexError):
                mem[key] = int(rest.split()[0]) * 1024
        for kind, key in (("total", "MemTotal"), ("available", "MemAvailable")):
            if key in mem:
                fam.add(mem[key], kind=kind)
        return fam

    # -- /sys ----------------------------------------------------------------------------------------

    def _temperatures(self) -> Family:
        fam = Family(
            metric_name("device", "temperature", "celsius"),
            "gauge",
            "Thermal zone and accelerator temperatures",
        )
        for zone in sorted((self.sys / "class" / "thermal").glob("thermal_zone*")):
            milli = _number(zone / "temp")
            if milli is not None:
                fam.add(milli / 1000, zone=zone.name, type=_read(zone / "type") or "")
        for gpu in self._gpus():
            if gpu["temperature"] is not None:
                fam.add(gpu["temperature"], zone=f"nvidia{gpu['index']}", type="nvidia-gpu")
        return fam

    def _power(self) -> Family:
        fam = Family(metric_name("device", "power", "watts"), "gauge", "Power sensors (hwmon)")
        for hw in sorted((self.sys / "class" / "hwmon").glob("hwmon*")):
            name = _read(hw / "name") or hw.name
            seen: set[str] = set()
            for f in sorted(hw.glob("power*_average")) + sorted(hw.glob("power*_input")):
                channel = f.name.split("_", 1)[0]
                value = _number(f)
                if channel in seen or value is None:
                    continue
                seen.add(channel)
                fam.add(value / 1e6, sensor=name, input=channel)
        return fam

    def _accelerators(self) -> list[Family]:
        util = Family(
            metric_name("device", "accelerator_utilization", "ratio"),
            "gauge",
            "Accelerator (GPU) busy share, 0 to 1",
        )
        power = Family(metric_name("device", "accelerator_power", "watts"), "gauge", "Accelerator power draw")
        busy = Family(
            metric_name("device", "accelerator_busy", "seconds", counter=True),
            "counter",
            "Time the accelerator was busy (Intel NPU)",
        )
        memory = Family(
            metric_name("device", "accelerator_memory", "bytes"), "gauge", "Accelerator memory by kind"
        )
        for rel in JETSON_LOAD:
            permille = _number(self.sys / rel)
            if permille is not None:
                util.add(permille / 1000, accelerator=Path(rel).parent.name)
                break
        for card in sorted((self.sys / "class" / "drm").glob("card*")):
            if "-" in card.name:  # connectors (card0-HDMI-A-1), not GPUs
                continue
            pct = _number(card / "device" / "gpu_busy_percent")
            if pct is not None:
                util.add(pct / 100, accelerator=card.name)
            for hw in sorted((card / "device" / "hwmon").glob("hwmon*")):
                uw = _number(hw / "power1_average")
                uw = uw if uw is not None else _number(hw / "power1_input")
                if uw is not None:
                    power.add(uw / 1e6, accelerator=card.name)
                    break
        for accel in sorted((self.sys / "class" / "accel").glob("accel*")):
            us = _number(accel / "device" / "npu_busy_time_us")
            if us is not None:
                busy.add(us / 1e6, accelerator=accel.name)
        self._nvidia_gpus(util, power, memory)
        return [util, power, busy, memory]

    # -- nvidia-smi ----------------------------------------------------------------------------------

    def _nvidia_gpus(self, util: Family, power: Family, memory: Family) -> None:
        for gpu in self._gpus():
            name = f"nvidia{gpu['index']}"
            if gpu["utilization"] is not None:
                util.add(gpu["utilization"] / 100, accelerator=name)
            if gpu["power"] is not None:
                power.add(gpu["power"], accelerator=name)
            for kind in ("used", "total"):
                mib = gpu[f"memory_{kind}"]
                if mib is not None:
                    memory.add(mib * 1024 * 1024, accelerator=name, kind=kind)

    def _gpus(self) -> list[dict[str, float | None]]:
        if self._nvidia is None:
            return []
        now = self._clock()
        if self._gpu_at is None or now - self._gpu_at >= self._gpu_every:
            self._gpu_at, self._gpu_text = now, self._nvidia()
        out: list[dict[str, float | None]] = []
        for line in (self._gpu_text or "").splitlines():
            cols = [c.strip() for c in line.split(",")]
            if len(cols) != 6:
                continue

            def num(text: str) -> float | None:
                try:
                    return float(text)
                except ValueError:  # "[N/A]", "[Not Supported]"
                    return None

            index = num(cols[0])
            if index is None:
                continue
            out.append(
                {
                    "index": int(index),
                    "utilization": num(cols[1]),
                    "power": num(cols[2]),
                    "temperature": num(cols[3]),
                    "memory_used": num(cols[4]),
                    "memory_total": num(cols[5]),
                }
            )
        return out
