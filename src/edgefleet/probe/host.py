"""The host: name, operating system, and board or product model."""

from __future__ import annotations

from pydantic import Field

from edgefleet.probe.model import Section
from edgefleet.probe.paths import ProbePaths
from edgefleet.probe.read import Unknowns, Unreadable, exists, read_text

__all__ = ["HostInfo", "collect_host", "device_tree_strings"]


class HostInfo(Section):
    """Who this machine is."""

    hostname: str | None = Field(description="The kernel's host name.")
    os_id: str | None = Field(description="os-release ID: debian, ubuntu, raspbian...")
    os_version: str | None = Field(description="os-release VERSION_ID.")
    os_name: str | None = Field(description="os-release PRETTY_NAME.")
    model: str | None = Field(
        description="Board or product model: the device tree's model, else DMI vendor and product name."
    )
    compatible: list[str] | None = Field(
        description="The device tree root's compatible strings, most specific first "
        "(empty on machines without a device tree)."
    )


def device_tree_strings(paths: ProbePaths, name: str) -> list[str]:
    """A NUL-separated device-tree property of the root node (``model``, ``compatible``)."""
    return [s for s in read_text(paths.device_tree / name).split("\0") if s]


def _os_release(paths: ProbePaths) -> dict[str, str]:
    for path in (paths.etc / "os-release", paths.etc.parent / "usr/lib/os-release"):
        try:
            text = read_text(path)
        except Unreadable:
            continue
        out: dict[str, str] = {}
        for line in text.splitlines():
            key, found, value = line.partition("=")
            if found and not key.startswith("#"):
                out[key.strip()] = value.strip().strip("\"'")
        return out
    raise Unreadable(f"{paths.etc / 'os-release'}: not present")


def _model(paths: ProbePaths) -> str:
    try:
        strings = device_tree_strings(paths, "model")
        if strings:
            return strings[0]
    except Unreadable:
        pass
    dmi = paths.sys / "class/dmi/id"
    try:
        vendor = read_text(dmi / "sys_vendor").strip()
        product = read_text(dmi / "product_name").strip()
    except Unreadable as exc:
        raise Unreadable(f"no device-tree model and no DMI product name ({exc.reason})") from exc
    return f"{vendor} {product}".strip()


def _compatible(paths: ProbePaths) -> list[str]:
    if not exists(paths.device_tree):
        return []
    return device_tree_strings(paths, "compatible")


def collect_host(paths: ProbePaths) -> HostInfo:
    """Read the host section."""
    unknown = Unknowns()
    release = unknown.attempt("os_name", lambda: _os_release(paths))
    if release is None:
        unknown["os_id"] = unknown["os_version"] = unknown["os_name"]
    else:
        for field, key in (("os_id", "ID"), ("os_version", "VERSION_ID"), ("os_name", "PRETTY_NAME")):
            if key not in release:
                unknown[field] = f"os-release has no {key}"
    return HostInfo(
        hostname=unknown.attempt("hostname", lambda: read_text(paths.proc / "sys/kernel/hostname").strip()),
        os_id=release.get("ID") if release else None,
        os_version=release.get("VERSION_ID") if release else None,
        os_name=release.get("PRETTY_NAME") if release else None,
        model=unknown.attempt("model", lambda: _model(paths)),
        compatible=unknown.attempt("compatible", lambda: _compatible(paths)),
        unknown=dict(unknown),
    )
