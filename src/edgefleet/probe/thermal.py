"""Thermal zones and power supplies."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from edgefleet.probe.model import Record, Section
from edgefleet.probe.paths import ProbePaths
from edgefleet.probe.read import Unknowns, Unreadable, exists, list_dir, read_int, read_text

__all__ = ["PowerSupply", "ThermalInfo", "ThermalZone", "collect_thermal"]


class ThermalZone(Record):
    """One thermal zone."""

    name: str = Field(description="thermal_zoneN.")
    type: str | None = Field(description="What it measures: cpu-thermal, gpu-thermal, x86_pkg_temp...")
    celsius: float | None = Field(description="Current temperature (null: the sensor did not answer).")


class PowerSupply(Record):
    """One power supply (mains, battery, USB)."""

    name: str
    type: str | None = Field(description="Mains, Battery, USB, UPS.")
    online: bool | None = Field(description="Whether it is supplying power (mains/USB).")
    status: str | None = Field(description="Battery status: Charging, Discharging, Full...")
    capacity_percent: int | None = Field(description="Battery charge.")


class ThermalInfo(Section):
    """Temperatures and power."""

    zones: list[ThermalZone] | None = Field(description="Thermal zones (empty: the kernel exposes none).")
    power_supplies: list[PowerSupply] | None = Field(description="Power supplies (empty: none reported).")


def _zones(paths: ProbePaths) -> list[ThermalZone]:
    root = paths.sys / "class/thermal"
    if not exists(root):
        return []
    zones: list[ThermalZone] = []
    for name in list_dir(root):
        if not name.startswith("thermal_zone"):
            continue
        try:
            kind: str | None = read_text(root / name / "type").strip()
        except Unreadable:
            kind = None
        try:
            celsius: float | None = read_int(root / name / "temp") / 1000.0
        except Unreadable:
            celsius = None  # many sensors answer EAGAIN or ENODATA while powered down
        zones.append(ThermalZone(name=name, type=kind, celsius=celsius))
    return sorted(zones, key=lambda z: int(z.name.removeprefix("thermal_zone") or 0))


def _read(directory: Path, name: str) -> str | None:
    try:
        return read_text(directory / name).strip()
    except Unreadable:
        return None


def _supplies(paths: ProbePaths) -> list[PowerSupply]:
    root = paths.sys / "class/power_supply"
    if not exists(root):
        return []
    out: list[PowerSupply] = []
    for name in list_dir(root):
        online, capacity = _read(root / name, "online"), _read(root / name, "capacity")
        out.append(
            PowerSupply(
                name=name,
                type=_read(root / name, "type"),
                online=online == "1" if online is not None else None,
                status=_read(root / name, "status"),
                capacity_percent=int(capacity) if capacity and capacity.isdigit() else None,
            )
        )
    return out


def collect_thermal(paths: ProbePaths) -> ThermalInfo:
    """Read thermal zones and power supplies from sysfs."""
    unknown = Unknowns()
    return ThermalInfo(
        zones=unknown.attempt("zones", lambda: _zones(paths)),
        power_supplies=unknown.attempt("power_supplies", lambda: _supplies(paths)),
        unknown=dict(unknown),
    )
