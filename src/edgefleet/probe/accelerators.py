"""Accelerators: GPUs, NPUs and TPUs found on PCI, USB, DRM/accel nodes, NVIDIA's driver and the device tree.

Every entry is structured (kind, vendor, model, bus ids, device node, driver) and names the
runtimes that can drive it (:mod:`edgefleet.probe.accelerator_ids`); which of those are installed
here is filled in from :mod:`edgefleet.probe.runtimes`.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from edgefleet.probe.accelerator_ids import (
    DEVICE_TREE,
    DRIVERS,
    JETSON_SOCS,
    NVIDIA_RUNTIMES,
    PCI_CLASS,
    PCI_IDS,
    USB_IDS,
    USB_NEEDS_FIRMWARE,
    Known,
)
from edgefleet.probe.host import device_tree_strings
from edgefleet.probe.model import Record, Section
from edgefleet.probe.paths import ProbePaths
from edgefleet.probe.read import Unknowns, Unreadable, exists, is_dir, is_file, list_dir, read_kv, read_text

__all__ = ["Accelerator", "AcceleratorsInfo", "OpenClIcd", "collect_accelerators"]

_BDF = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")

# sysfs class → (where its nodes live under /dev)
_CHAR_CLASSES: tuple[tuple[str, str], ...] = (
    ("accel", "accel/{name}"),
    ("hailo_chardev", "{name}"),
    ("apex", "{name}"),
    ("drm", "dri/{name}"),
)


class Accelerator(Record):
    """One accelerator."""

    kind: Literal["gpu", "npu", "tpu"] = Field(description="gpu, npu or tpu.")
    vendor: str = Field(description="nvidia, intel, amd, hailo, google, rockchip, arm, broadcom...")
    model: str = Field(description="Model name, as precise as the sources allow.")
    bus: Literal["pci", "usb", "platform"] = Field(description="How it is attached.")
    address: str | None = Field(description="PCI address (0000:01:00.0), USB port path (2-1) or SoC node.")
    pci_id: str | None = Field(description="PCI vendor:device, lower-case hex.")
    usb_id: str | None = Field(description="USB vendor:product, lower-case hex.")
    device_node: str | None = Field(description="The node a runtime opens: /dev/accel/accel0, /dev/hailo0...")
    driver: str | None = Field(description="Bound kernel driver (null: none bound).")
    runtimes: list[str] = Field(
        description="Runtimes that can drive it: onnxruntime:<ExecutionProvider>, tflite:<delegate>, "
        "hailort, rknn."
    )
    usable_runtimes: list[str] = Field(
        default_factory=list, description="Those of `runtimes` installed on this machine right now."
    )
    details: dict[str, str] = Field(
        default_factory=dict,
        description="Extra facts by source: driver_version, l4t_release, gpu_load_permille, memory_bytes...",
    )


class OpenClIcd(Record):
    """An OpenCL installable client driver registered in /etc/OpenCL/vendors."""

    name: str = Field(description="The .icd file name without extension.")
    library: str = Field(description="The library it names.")


class AcceleratorsInfo(Section):
    """Accelerators and OpenCL drivers."""

    devices: list[Accelerator] | None = Field(description="Every accelerator found.")
    opencl_icds: list[OpenClIcd] | None = Field(description="Registered OpenCL ICDs (not enumerated).")


@dataclass
class _Entry:
    """An accelerator being assembled from several sources."""

    known: Known
    bus: Literal["pci", "usb", "platform"]
    address: str | None
    pci_id: str | None = None
    usb_id: str | None = None
    driver: str | None = None
    nodes: list[str] = field(default_factory=list)
    model: str | None = None
    details: dict[str, str] = field(default_factory=dict)

    def record(self) -> Accelerator:
        return Accelerator(
            kind=self.known.kind,
            vendor=self.known.vendor,
            model=self.model or self.known.model,
            bus=self.bus,
            address=self.address,
            pci_id=self.pci_id,
            usb_id=self.usb_id,
            device_node=self.nodes[0] if self.nodes else None,
            driver=self.driver,
            runtimes=list(self.known.runtimes),
            details=dict(sorted(self.details.items())),
        )


def _hex(path: Path) -> str:
    return read_text(path).strip().lower().removeprefix("0x")


def _driver(device_dir: Path) -> str | None:
    try:
        return (device_dir / "driver").readlink().name
    except OSError:
        return None


def _pci(paths: ProbePaths, found: dict[str, _Entry]) -> None:
    root = paths.sys / "bus/pci/devices"
    if not exists(root):
        return
    for bdf in list_dir(root):
        dev = root / bdf
        try:
            vendor, device, klass = _hex(dev / "vendor"), _hex(dev / "device"), _hex(dev / "class")
        except Unreadable:
            continue
        known = PCI_IDS.get((vendor, device))
        if known is None and klass.startswith("03"):
            known = PCI_CLASS.get(vendor)
        if known is None:
            continue
        entry = _Entry(known, "pci", bdf, pci_id=f"{vendor}:{device}", driver=_driver(dev))
        if entry.driver is None:
            entry.details["driver_state"] = "no kernel driver bound"
        found[bdf] = entry


def _char_nodes(paths: ProbePaths, found: dict[str, _Entry]) -> None:
    """Attach /dev nodes of accel, hailo, apex and DRM render devices to their PCI or platform device."""
    for klass, pattern in _CHAR_CLASSES:
        cls = paths.sys / "class" / klass
        if not is_dir(cls):
            continue
        for name in list_dir(cls):
            if klass == "drm" and not name.startswith("renderD"):
                continue
            device = cls / name / "device"
            try:
                real = device.resolve(strict=True)
            except OSError:
                continue
            parent = real.name
            driver = _driver(device)
            node = str(Path("/dev") / pattern.format(name=name))
            if not exists(paths.host(Path(node))):
                node = ""
            entry = found.get(parent)
            if entry is None:
                known = DRIVERS.get(driver or "")
                if known is None:
                    continue
                entry = _Entry(known, "pci" if _BDF.match(parent) else "platform", parent, driver=driver)
                if entry.bus == "pci":
                    try:
                        entry.pci_id = f"{_hex(real / 'vendor')}:{_hex(real / 'device')}"
                    except Unreadable:
                        entry.pci_id = None
                found[parent] = entry
            entry.driver = entry.driver or driver
            if entry.driver:
                entry.details.pop("driver_state", None)
            if node and node not in entry.nodes:
                # an accel or vendor node is what a runtime opens; a render node only for GPUs
                entry.nodes.insert(0 if klass != "drm" else len(entry.nodes), node)


def _usb(paths: ProbePaths, found: dict[str, _Entry]) -> None:
    root = paths.sys / "bus/usb/devices"
    if not exists(root):
        return
    for name in list_dir(root):
        dev = root / name
        try:
            vid, pid = _hex(dev / "idVendor"), _hex(dev / "idProduct")
        except Unreadable:
            continue
        known = USB_IDS.get((vid, pid))
        if known is None:
            continue
        entry = _Entry(known, "usb", name, usb_id=f"{vid}:{pid}")
        try:
            bus, num = int(read_text(dev / "busnum")), int(read_text(dev / "devnum"))
            entry.nodes.append(f"/dev/bus/usb/{bus:03d}/{num:03d}")
        except (Unreadable, ValueError):
            pass
        entry.details["firmware"] = "not loaded" if (vid, pid) in USB_NEEDS_FIRMWARE else "loaded"
        found[f"usb:{name}"] = entry


def _nvidia_proc(paths: ProbePaths, found: dict[str, _Entry]) -> None:
    """NVIDIA's kernel driver: /proc/driver/nvidia and /dev/nvidia*."""
    proc = paths.proc / "driver/nvidia"
    version = None
    try:
        match = re.search(r"Kernel Module\s+(?:for \S+\s+)?([\d.]+)", read_text(proc / "version"))
        version = match.group(1) if match else None
    except Unreadable:
        pass
    gpus = proc / "gpus"
    for bdf in list_dir(gpus) if is_dir(gpus) else []:
        try:
            info = read_kv(gpus / bdf / "information")
        except Unreadable:
            continue
        key = bdf.lower()
        entry = found.setdefault(key, _Entry(PCI_CLASS["10de"], "pci", key, driver="nvidia"))
        entry.model = info.get("Model") or entry.model
        minor = info.get("Device Minor")
        if minor and minor.isdigit() and exists(paths.host(Path(f"/dev/nvidia{minor}"))):
            entry.nodes.insert(0, f"/dev/nvidia{minor}")
    nvidia = [e for e in found.values() if e.known.vendor == "nvidia" and e.bus == "pci"]
    if not nvidia and is_dir(paths.dev):
        # a container that was given the device nodes but not the driver's /proc view
        for name in list_dir(paths.dev):
            if re.fullmatch(r"nvidia\d+", name):
                entry = _Entry(PCI_CLASS["10de"], "pci", None, driver="nvidia", nodes=[f"/dev/{name}"])
                found[f"dev:{name}"] = entry
                nvidia.append(entry)
    for entry in nvidia:
        if version:
            entry.details["driver_version"] = version


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _nvml(paths: ProbePaths, found: dict[str, _Entry]) -> str | None:
    """Refine NVIDIA entries through NVML; returns why NVML could not be used, or None."""
    if not paths.find_module("pynvml"):
        return None
    try:
        nvml = paths.import_module("pynvml")
        nvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 (NVML raises its own error class, or OSError without libnvidia-ml)
        return f"NVML unavailable: {exc}"
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            bus_id = _text(nvml.nvmlDeviceGetPciInfo(handle).busId).lower()
            bdf = bus_id[-12:] if len(bus_id) >= 12 else bus_id
            entry = found.setdefault(bdf, _Entry(PCI_CLASS["10de"], "pci", bdf, driver="nvidia"))
            entry.model = _text(nvml.nvmlDeviceGetName(handle))
            entry.details["driver_version"] = driver
            entry.details["memory_bytes"] = str(int(nvml.nvmlDeviceGetMemoryInfo(handle).total))
            entry.details["uuid"] = _text(nvml.nvmlDeviceGetUUID(handle))
            node = f"/dev/nvidia{int(nvml.nvmlDeviceGetMinorNumber(handle))}"
            if node not in entry.nodes:
                entry.nodes.insert(0, node)
    except Exception as exc:  # noqa: BLE001 (any NVML query may fail with NVMLError_NotSupported and kin)
        return f"NVML query failed: {exc}"
    finally:
        with contextlib.suppress(Exception):  # shutting down after a failed query is best effort
            nvml.nvmlShutdown()
    return None


_JETSON_LOAD = (  # the GPU load in permille: JetPack 6, JetPack 5, older L4T
    "devices/platform/bus@0/17000000.gpu/load",
    "devices/platform/17000000.gpu/load",
    "devices/platform/17000000.ga10b/load",
    "devices/gpu.0/load",
)
_JETSON_NODES = ("/dev/nvgpu/igpu0/ctrl", "/dev/nvhost-gpu", "/dev/nvhost-ctrl-gpu")


def _jetson(paths: ProbePaths, compatible: list[str], found: dict[str, _Entry]) -> None:
    soc = next((c for c in compatible if c in JETSON_SOCS), None)
    if soc is None:
        return
    entry = _Entry(
        Known("gpu", "nvidia", JETSON_SOCS[soc], NVIDIA_RUNTIMES), "platform", soc.removeprefix("nvidia,")
    )
    entry.driver = "nvgpu"
    entry.model = f"{JETSON_SOCS[soc]} integrated GPU"
    try:
        release = read_text(paths.etc / "nv_tegra_release").splitlines()[0]
        major = re.search(r"R(\d+)", release)
        revision = re.search(r"REVISION:\s*([\d.]+)", release)
        if major:
            entry.details["l4t_release"] = f"R{major.group(1)}" + (
                f".{revision.group(1)}" if revision else ""
            )
    except (Unreadable, IndexError):
        pass
    for rel in _JETSON_LOAD:
        try:
            entry.details["gpu_load_permille"] = str(int(read_text(paths.sys / rel)))
            break
        except (Unreadable, ValueError):
            continue
    entry.nodes = [n for n in _JETSON_NODES if exists(paths.host(Path(n)))]
    found[f"jetson:{soc}"] = entry


def _device_tree_npus(paths: ProbePaths, found: dict[str, _Entry]) -> None:
    """SoC NPUs named in the device tree (top-level nodes) whose driver exposed no node."""
    if not is_dir(paths.device_tree):
        return
    for node in list_dir(paths.device_tree):
        compat = paths.device_tree / node / "compatible"
        if not is_file(compat):
            continue
        try:
            strings = [s for s in read_text(compat).split("\0") if s]
        except Unreadable:
            continue
        known = next((DEVICE_TREE[s] for s in strings if s in DEVICE_TREE), None)
        if known is None:
            continue
        if any(e.known.vendor == known.vendor and e.known.kind == known.kind for e in found.values()):
            continue
        entry = _Entry(known, "platform", node)
        entry.details["driver_state"] = "described by the device tree; no driver exposed a device node"
        if known is DRIVERS["rknpu"]:
            try:
                entry.details["driver_version"] = read_text(paths.sys / "kernel/debug/rknpu/version").strip()
                entry.driver = "rknpu"
                entry.details.pop("driver_state")
            except Unreadable:
                pass
        found[f"dt:{node}"] = entry


def _devices(paths: ProbePaths) -> list[Accelerator]:
    found: dict[str, _Entry] = {}
    _pci(paths, found)
    _char_nodes(paths, found)
    _usb(paths, found)
    _nvidia_proc(paths, found)
    nvml_problem = _nvml(paths, found)
    compatible: list[str] = []
    if exists(paths.device_tree):
        compatible = device_tree_strings(paths, "compatible")
    _jetson(paths, compatible, found)
    _device_tree_npus(paths, found)
    if nvml_problem:
        for entry in found.values():
            if entry.known.vendor == "nvidia":
                entry.details["nvml"] = nvml_problem
    order = {"pci": 0, "platform": 1, "usb": 2}
    return [e.record() for e in sorted(found.values(), key=lambda e: (order[e.bus], e.address or ""))]


def _opencl(paths: ProbePaths) -> list[OpenClIcd]:
    vendors = paths.etc / "OpenCL/vendors"
    if not exists(vendors):
        return []
    return [
        OpenClIcd(name=name.removesuffix(".icd"), library=read_text(vendors / name).strip())
        for name in list_dir(vendors)
        if name.endswith(".icd")
    ]


def collect_accelerators(paths: ProbePaths) -> AcceleratorsInfo:
    """Find every accelerator this machine has."""
    unknown = Unknowns()
    return AcceleratorsInfo(
        devices=unknown.attempt("devices", lambda: _devices(paths)),
        opencl_icds=unknown.attempt("opencl_icds", lambda: _opencl(paths)),
        unknown=dict(unknown),
    )
