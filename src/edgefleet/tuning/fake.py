"""Fixture kernel trees for tests: a board's /proc/sys, /sys, /proc/irq and /dev/cpu_dma_latency.

They imitate the files the kernel exposes (THP's ``[bracketed]`` choice, cpufreq policies with their
available governors, IRQ affinity lists), so knobs run unchanged against :meth:`Roots.under`.
"""

from __future__ import annotations

import struct
from pathlib import Path

from edgefleet.tuning.roots import Roots

__all__ = ["fake_board"]

_SYSCTLS = {
    "vm/swappiness": "60",
    "vm/dirty_ratio": "20",
    "vm/dirty_background_ratio": "10",
    "vm/dirty_writeback_centisecs": "500",
    "net/core/somaxconn": "4096",
    "kernel/nmi_watchdog": "1",
    "kernel/random/boot_id": "00000000-0000-0000-0000-000000000001",
}


def _put(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def fake_board(base: Path, *, cpus: int = 4, cpufreq: bool = True, irqs: int = 3) -> Roots:
    """Build a board below ``base`` and return its :class:`Roots`.

    ``cpufreq=True`` gives an ARM-like board with schedutil/performance/powersave governors,
    EPP, a boost switch and per-policy frequencies; ``False`` gives a VM-like board without a driver.
    """
    roots = Roots.under(base)
    for name, value in _SYSCTLS.items():
        _put(roots.proc_sys / name, value + "\n")
    thp = roots.sys / "kernel" / "mm" / "transparent_hugepage"
    _put(thp / "enabled", "always [madvise] never\n")
    _put(thp / "defrag", "always defer defer+madvise [madvise] never\n")
    cpu = roots.sys / "devices" / "system" / "cpu"
    _put(cpu / "online", f"0-{cpus - 1}\n")
    (cpu / "cpufreq").mkdir(parents=True, exist_ok=True)
    for n in range(cpus):
        (cpu / f"cpu{n}").mkdir(parents=True, exist_ok=True)
    for sid, (name, latency) in enumerate([("POLL", 0), ("C1", 2), ("C2", 50), ("C3", 200)]):
        _put(cpu / "cpu0" / "cpuidle" / f"state{sid}" / "name", name + "\n")
        _put(cpu / "cpu0" / "cpuidle" / f"state{sid}" / "latency", f"{latency}\n")
    if cpufreq:
        _put(cpu / "cpufreq" / "boost", "0\n")
        for p in range(cpus):
            policy = cpu / "cpufreq" / f"policy{p}"
            _put(policy / "scaling_governor", "schedutil\n")
            _put(
                policy / "scaling_available_governors",
                "conservative ondemand userspace powersave performance schedutil\n",
            )
            _put(policy / "energy_performance_preference", "balance_performance\n")
            _put(
                policy / "energy_performance_available_preferences",
                "default performance balance_performance balance_power power\n",
            )
            _put(policy / "cpuinfo_min_freq", "408000\n")
            _put(policy / "cpuinfo_max_freq", "1800000\n")
            _put(policy / "scaling_min_freq", "408000\n")
            _put(policy / "scaling_available_frequencies", "408000 816000 1200000 1608000 1800000\n")
    _put(roots.proc_irq / "default_smp_affinity", format((1 << cpus) - 1, "x") + "\n")
    for irq in range(irqs):
        _put(roots.proc_irq / str(24 + irq) / "smp_affinity_list", f"0-{cpus - 1}\n")
    _put(roots.proc_cmdline, "console=ttyS0 root=/dev/mmcblk0p2 rw\n")
    roots.cpu_dma_latency.parent.mkdir(parents=True, exist_ok=True)
    roots.cpu_dma_latency.write_bytes(struct.pack("=i", 2_000_000_000))
    for block in ("mmcblk0", "sda"):
        _put(roots.sys / "block" / block / "queue" / "read_ahead_kb", "128\n")
    return roots
