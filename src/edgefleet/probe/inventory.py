"""The device inventory: every probe section in one versioned, JSON-serialisable record.

``collect()`` never raises for a machine that is odd, locked down or half-broken: a field that
cannot be read is ``null`` with its reason in the section's ``unknown``; a section whose reader
failed unexpectedly is ``null`` with the error in the inventory's own ``unknown``. The JSON
schema (``inventory_schema()``) is published as ``docs/probe.schema.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import Field

from edgefleet import __version__
from edgefleet.probe.accelerators import AcceleratorsInfo, collect_accelerators
from edgefleet.probe.cameras import CamerasInfo, collect_cameras
from edgefleet.probe.cgroups import CgroupsInfo, collect_cgroups
from edgefleet.probe.cpu import CpuInfo, collect_cpu
from edgefleet.probe.host import HostInfo, collect_host
from edgefleet.probe.kernel import KernelInfo, collect_kernel
from edgefleet.probe.memory import MemoryInfo, collect_memory
from edgefleet.probe.model import Section
from edgefleet.probe.namespaces import NamespacesInfo, collect_namespaces
from edgefleet.probe.paths import ProbePaths
from edgefleet.probe.runtimes import RuntimesInfo, collect_runtimes, usable_runtimes
from edgefleet.probe.security import SecurityInfo, collect_security
from edgefleet.probe.thermal import ThermalInfo, collect_thermal

__all__ = ["SCHEMA_ID", "SCHEMA_VERSION", "Inventory", "collect", "inventory_schema"]

SCHEMA_VERSION: Literal[1] = 1
"""Bumped on any change that can break a reader: a field removed, renamed or retyped.
Adding an optional field does not bump it; readers ignore fields they do not know."""
SCHEMA_ID = "https://edgefleet.dev/schemas/probe/v1.json"

log = logging.getLogger(__name__)
S = TypeVar("S", bound=Section)


class Inventory(Section):
    """What this device is and what it can do, as ``edgefleet probe --json`` prints it."""

    schema_version: Literal[1] = Field(description="Version of this schema.")
    edgefleet_version: str = Field(description="Version of edgefleet that collected it.")
    collected_at: datetime = Field(description="When it was collected (UTC, ISO 8601).")
    host: HostInfo | None = Field(description="Host name, OS and board model.")
    cpu: CpuInfo | None = Field(description="CPUs, ISA features, isolation, cpufreq.")
    memory: MemoryInfo | None = Field(description="RAM, swap, huge pages.")
    kernel: KernelInfo | None = Field(description="Kernel release, preemption model, init system.")
    cgroups: CgroupsInfo | None = Field(description="cgroup mode and usable, writable controllers.")
    namespaces: NamespacesInfo | None = Field(description="Namespace kinds and limits.")
    security: SecurityInfo | None = Field(description="Sandboxing features and boot integrity.")
    accelerators: AcceleratorsInfo | None = Field(description="GPUs, NPUs, TPUs and OpenCL drivers.")
    cameras: CamerasInfo | None = Field(description="V4L2 capture devices.")
    runtimes: RuntimesInfo | None = Field(description="ONNX Runtime providers and vendor runtimes.")
    thermal: ThermalInfo | None = Field(description="Thermal zones and power supplies.")


def _section(
    name: str, read: Callable[[ProbePaths], S], paths: ProbePaths, unknown: dict[str, str]
) -> S | None:
    try:
        return read(paths)
    except Exception as exc:
        log.warning("probe section %s failed", name, exc_info=True)
        unknown[name] = f"the {name} probe failed: {type(exc).__name__}: {exc}"
        return None


def collect(paths: ProbePaths = ProbePaths()) -> Inventory:  # noqa: B008 (frozen, so a shared default is safe)
    """Probe the machine ``paths`` describes (this one by default)."""
    unknown: dict[str, str] = {}
    runtimes = _section("runtimes", collect_runtimes, paths, unknown)
    accelerators = _section("accelerators", collect_accelerators, paths, unknown)
    if accelerators is not None and accelerators.devices is not None and runtimes is not None:
        devices = [
            d.model_copy(update={"usable_runtimes": usable_runtimes(d.runtimes, runtimes)})
            for d in accelerators.devices
        ]
        accelerators = accelerators.model_copy(update={"devices": devices})
    return Inventory(
        schema_version=SCHEMA_VERSION,
        edgefleet_version=__version__,
        collected_at=paths.now(),
        host=_section("host", collect_host, paths, unknown),
        cpu=_section("cpu", collect_cpu, paths, unknown),
        memory=_section("memory", collect_memory, paths, unknown),
        kernel=_section("kernel", collect_kernel, paths, unknown),
        cgroups=_section("cgroups", collect_cgroups, paths, unknown),
        namespaces=_section("namespaces", collect_namespaces, paths, unknown),
        security=_section("security", collect_security, paths, unknown),
        accelerators=accelerators,
        cameras=_section("cameras", collect_cameras, paths, unknown),
        runtimes=runtimes,
        thermal=_section("thermal", collect_thermal, paths, unknown),
        unknown=unknown,
    )


def inventory_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`Inventory` as ``--json`` serialises it."""
    schema = Inventory.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
    }
