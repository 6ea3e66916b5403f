"""CPU: model, architecture, cores and threads, inference-relevant ISA features, isolation, cpufreq."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from edgefleet.probe.cpu_budget import parse_cpulist
from edgefleet.probe.model import Section
from edgefleet.probe.paths import ProbePaths
from edgefleet.probe.read import Unknowns, Unreadable, exists, is_dir, list_dir, read_text

__all__ = ["CpuInfo", "collect_cpu", "isa_features"]

# cpuinfo flag (x86 "flags", Arm "Features") → the name edgefleet reports. Only what changes
# which kernels an inference runtime can pick.
_ISA_FLAGS: dict[str, str] = {
    "sse4_2": "sse4.2",
    "avx": "avx",
    "avx2": "avx2",
    "fma": "fma",
    "f16c": "f16c",
    "avx512f": "avx512f",
    "avx512bw": "avx512bw",
    "avx512_vnni": "avx512_vnni",
    "avx_vnni": "avx_vnni",
    "avx512_bf16": "avx512_bf16",
    "avx512_fp16": "avx512_fp16",
    "amx_tile": "amx",
    "amx_int8": "amx_int8",
    "amx_bf16": "amx_bf16",
    "asimd": "neon",
    "neon": "neon",
    "asimddp": "dotprod",
    "asimdhp": "fp16",
    "i8mm": "i8mm",
    "bf16": "bf16",
    "sve": "sve",
    "sve2": "sve2",
    "sme": "sme",
}

# Arm "CPU implementer" / "CPU part" → core name, for boards whose cpuinfo has no model name.
_ARM_IMPLEMENTERS = {"0x41": "Arm", "0x4e": "NVIDIA", "0x51": "Qualcomm", "0x61": "Apple"}
_ARM_PARTS = {
    ("0x41", "0xd03"): "Cortex-A53",
    ("0x41", "0xd04"): "Cortex-A35",
    ("0x41", "0xd05"): "Cortex-A55",
    ("0x41", "0xd07"): "Cortex-A57",
    ("0x41", "0xd08"): "Cortex-A72",
    ("0x41", "0xd09"): "Cortex-A73",
    ("0x41", "0xd0a"): "Cortex-A75",
    ("0x41", "0xd0b"): "Cortex-A76",
    ("0x41", "0xd0c"): "Neoverse-N1",
    ("0x41", "0xd0d"): "Cortex-A77",
    ("0x41", "0xd41"): "Cortex-A78",
    ("0x41", "0xd42"): "Cortex-A78AE",
    ("0x41", "0xd44"): "Cortex-X1",
    ("0x41", "0xd46"): "Cortex-A510",
    ("0x41", "0xd47"): "Cortex-A710",
    ("0x41", "0xd4f"): "Neoverse-V2",
    ("0x4e", "0x004"): "Carmel",
}


class CpuInfo(Section):
    """The CPUs of this machine."""

    architecture: str | None = Field(description="Kernel machine name: x86_64, aarch64, armv7l, riscv64.")
    vendor: str | None = Field(description="CPU vendor (x86 vendor_id or Arm implementer).")
    model: str | None = Field(description="CPU model name; on Arm the core names, e.g. 'Cortex-A76'.")
    threads: int | None = Field(description="Logical CPUs online.")
    cores: int | None = Field(description="Physical cores (distinct package/core pairs among online CPUs).")
    sockets: int | None = Field(description="Physical packages.")
    isa: list[str] | None = Field(
        description="Inference-relevant ISA features: avx2, avx512f, avx512_vnni, avx_vnni, amx, neon, "
        "dotprod, i8mm, sve, sve2, fp16, bf16..."
    )
    online: list[int] | None = Field(description="Online CPU numbers.")
    isolated: list[int] | None = Field(description="CPUs isolated from the scheduler (isolcpus).")
    nohz_full: list[int] | None = Field(description="CPUs in adaptive-tick mode (nohz_full).")
    cpufreq_driver: str | None = Field(description="cpufreq scaling driver, or 'unsupported' when none.")
    governor: str | None = Field(
        description="The governor of every online CPU, 'mixed' when they differ, 'unsupported' when the "
        "kernel has no cpufreq driver."
    )
    governors: dict[str, str] | None = Field(description="CPU number → scaling governor.")
    available_governors: list[str] | None = Field(description="Governors cpu0 can switch to.")


def isa_features(flags: list[str]) -> list[str]:
    """The reported ISA names present in a cpuinfo flag list, sorted and without duplicates."""
    return sorted({_ISA_FLAGS[f] for f in flags if f in _ISA_FLAGS})


def _cpuinfo_blocks(text: str) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in [*text.splitlines(), ""]:
        key, found, value = line.partition(":")
        if found:
            current.setdefault(key.strip().lower(), value.strip())
        elif not line.strip() and current:
            blocks.append(current)
            current = {}
    return blocks


def _architecture(paths: ProbePaths, cpus: list[dict[str, str]]) -> str:
    try:
        return read_text(paths.proc / "sys/kernel/arch").strip()
    except Unreadable:
        # kernels before 5.x have no kernel.arch sysctl: infer it from cpuinfo's own fields
        first = cpus[0] if cpus else {}
        if "vendor_id" in first:
            return "x86_64" if "lm" in first.get("flags", "").split() else "i686"
        if first.get("cpu architecture") == "8":
            return "aarch64"
        if first.get("cpu architecture") == "7":
            return "armv7l"
        if "isa" in first and first["isa"].startswith("rv64"):
            return "riscv64"
        raise


def _model(cpus: list[dict[str, str]]) -> str:
    names: list[str] = []
    for block in cpus:
        name = block.get("model name")
        if name is None and "cpu part" in block:
            impl, part = block.get("cpu implementer", ""), block["cpu part"]
            name = _ARM_PARTS.get((impl, part), f"{_ARM_IMPLEMENTERS.get(impl, impl)} part {part}")
        if name is not None and name not in names:
            names.append(name)
    if not names:
        raise ValueError("/proc/cpuinfo names no model")
    return " + ".join(names)


def _vendor(cpus: list[dict[str, str]]) -> str:
    first = cpus[0] if cpus else {}
    if "vendor_id" in first:
        return first["vendor_id"]
    if "cpu implementer" in first:
        impl = first["cpu implementer"]
        return _ARM_IMPLEMENTERS.get(impl, impl)
    raise ValueError("/proc/cpuinfo names no vendor")


def _topology(paths: ProbePaths, online: list[int], cpus: list[dict[str, str]]) -> tuple[int, int]:
    """(cores, sockets) from sysfs topology, falling back to cpuinfo's physical/core ids."""
    pairs: set[tuple[str, str]] = set()
    for n in online:
        topo = paths.sys / f"devices/system/cpu/cpu{n}/topology"
        try:
            pairs.add((read_text(topo / "physical_package_id").strip(), read_text(topo / "core_id").strip()))
        except Unreadable:
            pairs = set()
            break
    if not pairs:
        pairs = {(b["physical id"], b["core id"]) for b in cpus if "physical id" in b and "core id" in b}
    if not pairs:
        raise Unreadable(f"{paths.sys / 'devices/system/cpu'}: no CPU topology, and /proc/cpuinfo has none")
    return len(pairs), len({p for p, _ in pairs})


def _cpulist(path: Path) -> list[int]:
    return list(parse_cpulist(read_text(path)))


def _cpufreq(paths: ProbePaths, online: list[int]) -> tuple[str, str, dict[str, str], list[str]]:
    """(driver, governor, per-CPU governors, available) — 'unsupported' when no driver is bound."""
    cpu_root = paths.sys / "devices/system/cpu"
    list_dir(cpu_root)  # an unreadable cpu directory is unknown, not "unsupported"
    if not is_dir(cpu_root / f"cpu{online[0] if online else 0}" / "cpufreq"):
        return "unsupported", "unsupported", {}, []
    governors: dict[str, str] = {}
    driver = ""
    for n in online:
        freq = cpu_root / f"cpu{n}" / "cpufreq"
        if not is_dir(freq):
            continue
        governors[str(n)] = read_text(freq / "scaling_governor").strip()
        driver = driver or read_text(freq / "scaling_driver").strip()
    available = read_text(cpu_root / f"cpu{online[0] if online else 0}/cpufreq/scaling_available_governors")
    values = set(governors.values())
    governor = values.pop() if len(values) == 1 else "mixed"
    return driver, governor, governors, available.split()


def collect_cpu(paths: ProbePaths) -> CpuInfo:
    """Read the CPU section from ``/proc/cpuinfo`` and ``/sys/devices/system/cpu``."""
    unknown = Unknowns()
    text = unknown.attempt("model", lambda: read_text(paths.proc / "cpuinfo"))
    cpus = [b for b in _cpuinfo_blocks(text or "") if "processor" in b]
    if text is None:
        reason = unknown["model"]
        for name in ("vendor", "isa"):
            unknown[name] = reason
    architecture = unknown.attempt("architecture", lambda: _architecture(paths, cpus))
    model = vendor = isa = None
    if text is not None:
        model = unknown.attempt("model", lambda: _model(cpus))
        vendor = unknown.attempt("vendor", lambda: _vendor(cpus))
        first = cpus[0] if cpus else {}
        isa = isa_features((first.get("flags") or first.get("features") or "").split())
    cpu_dir = paths.sys / "devices/system/cpu"
    online = unknown.attempt("online", lambda: _cpulist(cpu_dir / "online"))
    if online is None and cpus:
        online = [int(b["processor"]) for b in cpus if b["processor"].isdigit()]
        del unknown["online"]
    isolated = unknown.attempt("isolated", lambda: _cpulist(cpu_dir / "isolated"))
    nohz_full = (  # the file exists only on kernels built with NO_HZ_FULL
        unknown.attempt("nohz_full", lambda: _cpulist(cpu_dir / "nohz_full"))
        if exists(cpu_dir / "nohz_full") or not is_dir(cpu_dir)
        else []
    )
    topology = unknown.attempt("cores", lambda: _topology(paths, online or [], cpus))
    if topology is None:
        unknown["sockets"] = unknown["cores"]
    freq = unknown.attempt("governor", lambda: _cpufreq(paths, online or []))
    if freq is None:
        for name in ("cpufreq_driver", "governors", "available_governors"):
            unknown[name] = unknown["governor"]
    if online is None:
        unknown["threads"] = unknown["online"]
    return CpuInfo(
        architecture=architecture,
        vendor=vendor,
        model=model,
        threads=len(online) if online is not None else None,
        cores=topology[0] if topology else None,
        sockets=topology[1] if topology else None,
        isa=isa,
        online=online,
        isolated=isolated,
        nohz_full=nohz_full,
        cpufreq_driver=freq[0] if freq else None,
        governor=freq[1] if freq else None,
        governors=freq[2] if freq else None,
        available_governors=freq[3] if freq else None,
        unknown=dict(unknown),
    )
