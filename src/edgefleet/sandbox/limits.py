"""Resource limits of one sandbox, parsed and checked before anything starts.

Sizes accept ``64m``, ``1.5G``, ``512MiB`` or plain bytes; CPU lists accept ``0-3,6``. The one
CPU-weight formula of edgefleet lives here (:func:`weight_to_shares`): weights are given in cgroup
v2 units (1-10000, default 100) and mapped onto v1 ``cpu.shares`` proportionally, the way systemd
maps ``CPUWeight=`` onto ``CPUShares=``: ``shares = weight * 1024 / 100`` (so the defaults agree,
100 ↔ 1024), clamped to the v1 range 2-262144.
"""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from edgefleet.sandbox.errors import LimitError, SandboxNotFoundError

__all__ = [
    "CFS_PERIOD_US",
    "DeviceRule",
    "IoMax",
    "Limits",
    "expand_cpulist",
    "io_weight_to_blkio",
    "parse_cpus",
    "parse_cpuset",
    "parse_device",
    "parse_io_max",
    "parse_size",
    "shares_to_weight",
    "weight_to_shares",
]

CFS_PERIOD_US = 100_000
WEIGHT_MIN, WEIGHT_DEFAULT, WEIGHT_MAX = 1, 100, 10_000
SHARES_MIN, SHARES_DEFAULT, SHARES_MAX = 2, 1024, 262_144
BLKIO_WEIGHT_MIN, BLKIO_WEIGHT_MAX = 10, 1000
MIN_MEMORY = 1 << 20  # below 1 MiB not even the exec of a static binary fits

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kb": 1 << 10,
    "kib": 1 << 10,
    "m": 1 << 20,
    "mb": 1 << 20,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gb": 1 << 30,
    "gib": 1 << 30,
    "t": 1 << 40,
    "tb": 1 << 40,
    "tib": 1 << 40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_CPULIST = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


def weight_to_shares(weight: int) -> int:
    """v1 ``cpu.shares`` for a v2 ``cpu.weight``: ``weight * 1024 / 100``, clamped to 2-262144."""
    return max(SHARES_MIN, min(SHARES_MAX, round(weight * SHARES_DEFAULT / WEIGHT_DEFAULT)))


def shares_to_weight(shares: int) -> int:
    """The inverse of :func:`weight_to_shares`: ``shares * 100 / 1024``, clamped to 1-10000."""
    return max(WEIGHT_MIN, min(WEIGHT_MAX, round(shares * WEIGHT_DEFAULT / SHARES_DEFAULT)))


def io_weight_to_blkio(weight: int) -> int:
    """v1 ``blkio.weight`` (10-1000) for a v2 ``io.weight`` (1-10000): ``weight / 10``, clamped."""
    return max(BLKIO_WEIGHT_MIN, min(BLKIO_WEIGHT_MAX, round(weight / 10)))


def parse_size(text: str, what: str = "memory") -> int:
    """Bytes from ``64m``/``1.5G``/``512MiB``/``1048576``; :class:`LimitError` names ``what``."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise LimitError(
            f"{what}: {text!r} is not a size; use bytes or a number with k, m, g or t (64m, 1.5G, 512MiB)",
            field=what,
            value=text,
        )
    return int(float(match.group(1)) * _UNITS[unit])


def parse_cpus(text: str, online: int) -> float:
    """A CPU quota in CPUs (``1.5``), more than 0 and at most the ``online`` CPUs."""
    try:
        cpus = float(text)
    except ValueError:
        raise LimitError(f"cpus: {text!r} is not a number of CPUs (e.g. 0.5, 1.5)", field="cpus") from None
    if not math.isfinite(cpus) or cpus < 0.01 or cpus > online:
        raise LimitError(
            f"cpus: {text} is impossible here; allowed 0.01 to {online} (online CPUs)",
            field="cpus",
            value=text,
            online=online,
        )
    return cpus


def expand_cpulist(text: str) -> set[int]:
    """The CPU numbers of a list such as ``0-3,6``; empty for an empty string."""
    out: set[int] = set()
    for part in filter(None, text.strip().split(",")):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def parse_cpuset(text: str, available: str, what: str = "cpuset") -> str:
    """A CPU (or memory node) list that must be a subset of ``available`` (both like ``0-3,6``)."""
    text = text.strip()
    if not _CPULIST.match(text):
        raise LimitError(f"{what}: {text!r} is not a list like 0-3,6", field=what, value=text)
    wanted, have = expand_cpulist(text), expand_cpulist(available)
    if not wanted <= have:
        extra = ",".join(str(c) for c in sorted(wanted - have))
        raise LimitError(
            f"{what}: {extra} not available; allowed {available}", field=what, value=text, allowed=available
        )
    return text


@dataclass(frozen=True)
class DeviceRule:
    """Access to one device node: its path, ``c`` or ``b``, major:minor and ``rwm`` permissions."""

    path: str
    kind: str
    major: int
    minor: int
    access: str = "rwm"

    def rule(self) -> str:
        """The v1 ``devices.allow`` line: ``c 81:0 rwm``."""
        return f"{self.kind} {self.major}:{self.minor} {self.access}"


def parse_device(text: str, dev_root: Path = Path("/")) -> DeviceRule:
    """``/dev/video0`` or ``/dev/video0:rw``: the node must exist and be a character or block device."""
    path, _, access = text.partition(":")
    access = access or "rwm"
    if not path.startswith("/dev/") or set(access) - set("rwm"):
        raise LimitError(
            f"device: {text!r} must be /dev/NAME with optional :PERMS from r, w, m",
            field="device",
            value=text,
        )
    try:
        st = (dev_root / path.lstrip("/")).stat()
    except OSError as exc:
        raise SandboxNotFoundError(
            f"device: {path} does not exist ({exc.strerror})", field="device", value=path
        ) from exc
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise LimitError(f"device: {path} is not a character or block device", field="device", value=path)
    return DeviceRule(path, kind, os.major(st.st_rdev), os.minor(st.st_rdev), access)


@dataclass(frozen=True)
class IoMax:
    """Bandwidth/IOPS ceilings for one block device (``MAJ:MIN``); ``None`` = unlimited."""

    device: str
    rbps: int | None = None
    wbps: int | None = None
    riops: int | None = None
    wiops: int | None = None


def parse_io_max(text: str, dev_root: Path = Path("/")) -> IoMax:
    """``/dev/sda:rbps=10m,wiops=100`` (or ``8:0:...``): per-device read/write bytes or IOPS per second."""
    target, sep, spec = text.rpartition(":") if "=" in text else (text, "", "")
    if not sep or not spec:
        raise LimitError(
            f"io-max: {text!r} must be DEVICE:KEY=VALUE[,...] with keys rbps, wbps, riops, wiops",
            field="io-max",
            value=text,
        )
    if re.match(r"^\d+:\d+$", target):
        device = target
    else:
        rule = parse_device(target, dev_root)
        if rule.kind != "b":
            raise LimitError(f"io-max: {target} is not a block device", field="io-max", value=text)
        device = f"{rule.major}:{rule.minor}"
    values: dict[str, int] = {}
    for item in spec.split(","):
        key, _, value = item.partition("=")
        if key not in {"rbps", "wbps", "riops", "wiops"} or not value:
            raise LimitError(
                f"io-max: {item!r} is not KEY=VALUE with keys rbps, wbps, riops, wiops",
                field="io-max",
                value=text,
            )
        values[key] = parse_size(value, "io-max") if key.endswith("bps") else int(value)
    return IoMax(device, **values)


@dataclass(frozen=True)
class Limits:
    """Everything a sandbox's cgroup may enforce. ``None`` (or empty) means "not limited"."""

    cpus: float | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    cpu_weight: int | None = None
    memory_max: int | None = None
    memory_high: int | None = None
    pids_max: int | None = None
    io_weight: int | None = None
    io_max: tuple[IoMax, ...] = ()
    devices: tuple[DeviceRule, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.cpu_weight is not None and not WEIGHT_MIN <= self.cpu_weight <= WEIGHT_MAX:
            raise LimitError(
                f"cpu-weight: {self.cpu_weight} is outside 1-10000 (default 100)", field="cpu-weight"
            )
        if self.io_weight is not None and not WEIGHT_MIN <= self.io_weight <= WEIGHT_MAX:
            raise LimitError(
                f"io-weight: {self.io_weight} is outside 1-10000 (default 100)", field="io-weight"
            )
        if self.memory_max is not None and self.memory_max < MIN_MEMORY:
            raise LimitError(
                f"memory: {self.memory_max} bytes is impossible; at least 1 MiB is needed", field="memory"
            )
        if self.memory_high is not None and self.memory_high < MIN_MEMORY:
            raise LimitError(f"memory-high: {self.memory_high} bytes is below 1 MiB", field="memory-high")
        if (
            self.memory_high is not None
            and self.memory_max is not None
            and self.memory_high > self.memory_max
        ):
            raise LimitError("memory-high: must not exceed --memory", field="memory-high")
        if self.pids_max is not None and self.pids_max < 1:
            raise LimitError(f"pids: {self.pids_max} is impossible; at least 1", field="pids")
        if self.cpus is not None and self.cpus <= 0:
            raise LimitError(f"cpus: {self.cpus} must be more than 0", field="cpus")

    def cfs_quota_us(self) -> int | None:
        """The CFS quota per :data:`CFS_PERIOD_US` for :attr:`cpus` (at least the kernel's 1000 µs)."""
        return None if self.cpus is None else max(1000, round(self.cpus * CFS_PERIOD_US))

    def requested(self) -> list[str]:
        """The names of the limits that are set, in CLI spelling."""
        names = {
            "cpus": self.cpus,
            "cpuset": self.cpuset_cpus,
            "cpuset-mems": self.cpuset_mems,
            "cpu-weight": self.cpu_weight,
            "memory": self.memory_max,
            "memory-high": self.memory_high,
            "pids": self.pids_max,
            "io-weight": self.io_weight,
            "io-max": self.io_max or None,
            "device": self.devices or None,
        }
        return [name for name, value in names.items() if value is not None]
