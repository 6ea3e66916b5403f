"""A :class:`SandboxSpec` to and from JSON, for the state files that outlive a supervisor."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from edgefleet.sandbox.limits import DeviceRule, IoMax, Limits
from edgefleet.sandbox.spec import Isolation, SandboxSpec, UserId

__all__ = ["spec_from_dict", "spec_to_dict"]


def spec_to_dict(spec: SandboxSpec) -> dict[str, Any]:
    """A JSON-ready dict (paths as strings)."""
    data = asdict(spec)
    iso = data["isolation"]
    iso["ro"] = [str(p) for p in spec.isolation.ro]
    iso["rw"] = [str(p) for p in spec.isolation.rw]
    iso["workdir"] = str(spec.isolation.workdir)
    data["argv"] = list(spec.argv)
    return data


def spec_from_dict(data: dict[str, Any]) -> SandboxSpec:
    """The inverse of :func:`spec_to_dict`."""
    lim = dict(data["limits"])
    lim["io_max"] = tuple(IoMax(**x) for x in lim.get("io_max", ()))
    lim["devices"] = tuple(DeviceRule(**x) for x in lim.get("devices", ()))
    iso = dict(data["isolation"])
    iso["user"] = UserId(**iso["user"])
    iso["ro"] = tuple(Path(p) for p in iso.get("ro", ()))
    iso["rw"] = tuple(Path(p) for p in iso.get("rw", ()))
    iso["workdir"] = Path(iso.get("workdir", "/"))
    return SandboxSpec(
        name=data["name"],
        argv=tuple(data["argv"]),
        limits=Limits(**lim),
        isolation=Isolation(**iso),
        env=data.get("env"),
    )
