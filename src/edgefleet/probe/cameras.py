"""Cameras: V4L2 capture devices, asked through the real ``VIDIOC_QUERYCAP`` ioctl.

UVC cameras create two ``/dev/video`` nodes each, one of them metadata-only; only nodes whose
``device_caps`` include video capture (single- or multi-planar) are cameras. The ioctl itself is
:attr:`ProbePaths.ioctl`, so tests feed recorded ``struct v4l2_capability`` bytes.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from edgefleet.probe.model import Record, Section
from edgefleet.probe.paths import ProbePaths
from edgefleet.probe.read import Unknowns, Unreadable, is_dir, list_dir, read_text

__all__ = [
    "CAPABILITY_SIZE",
    "VIDIOC_QUERYCAP",
    "Camera",
    "CamerasInfo",
    "Capability",
    "SkippedNode",
    "collect_cameras",
    "parse_capability",
]

VIDIOC_QUERYCAP = 0x80685600  # _IOR('V', 0, struct v4l2_capability)
CAPABILITY_SIZE = 104
_LAYOUT = struct.Struct("<16s32s32sIII12x")  # driver, card, bus_info, version, capabilities, device_caps

CAP_DEVICE_CAPS = 0x80000000
_CAP_NAMES = {
    0x00000001: "video_capture",
    0x00000002: "video_output",
    0x00001000: "video_capture_mplane",
    0x00002000: "video_output_mplane",
    0x00004000: "video_m2m_mplane",
    0x00008000: "video_m2m",
    0x00200000: "ext_pix_format",
    0x00800000: "meta_capture",
    0x01000000: "readwrite",
    0x04000000: "streaming",
    0x08000000: "meta_output",
    0x10000000: "touch",
    0x20000000: "io_mc",
}
_CAPTURE = 0x00000001 | 0x00001000


@dataclass(frozen=True)
class Capability:
    """A decoded ``struct v4l2_capability``."""

    driver: str
    card: str
    bus_info: str
    version: str
    capabilities: int
    device_caps: int

    @property
    def node_caps(self) -> int:
        """The capabilities of this node: ``device_caps`` when the driver fills it, else the device's."""
        return self.device_caps if self.capabilities & CAP_DEVICE_CAPS else self.capabilities


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")


def parse_capability(raw: bytes) -> Capability:
    """Decode the 104 bytes VIDIOC_QUERYCAP fills; ``ValueError`` for any other size."""
    if len(raw) != CAPABILITY_SIZE:
        raise ValueError(f"v4l2_capability is {CAPABILITY_SIZE} bytes, got {len(raw)}")
    driver, card, bus, version, caps, device_caps = _LAYOUT.unpack(raw)
    return Capability(
        driver=_cstr(driver),
        card=_cstr(card),
        bus_info=_cstr(bus),
        version=f"{version >> 16}.{(version >> 8) & 0xFF}.{version & 0xFF}",
        capabilities=caps,
        device_caps=device_caps,
    )


def cap_names(mask: int) -> list[str]:
    """The names of the capability bits set in ``mask``."""
    return [name for bit, name in _CAP_NAMES.items() if mask & bit]


class Camera(Record):
    """A capture-capable V4L2 node."""

    device_node: str = Field(description="/dev/videoN.")
    driver: str = Field(description="V4L2 driver: uvcvideo, rp1-cfe, rkisp1...")
    card: str = Field(description="The device's name as the driver reports it.")
    bus_info: str = Field(description="Where it is attached: usb-0000:00:14.0-1, platform:...")
    capabilities: list[str] = Field(description="This node's capabilities (device_caps).")
    usb_id: str | None = Field(description="USB vendor:product for USB cameras.")
    by_id: str | None = Field(description="The stable /dev/v4l/by-id name pointing at this node.")


class SkippedNode(Record):
    """A /dev/video node that is not a camera (metadata, output, codec) or could not be asked."""

    device_node: str
    reason: str


class CamerasInfo(Section):
    """V4L2 capture devices."""

    cameras: list[Camera] | None = Field(description="Capture-capable V4L2 nodes.")
    skipped: list[SkippedNode] | None = Field(
        description="Other /dev/video nodes and why they were left out."
    )


def _video_nodes(paths: ProbePaths) -> list[str]:
    if not is_dir(paths.dev):
        raise Unreadable(f"{paths.dev}: not present")
    nodes = [n for n in list_dir(paths.dev) if re.fullmatch(r"video\d+", n)]
    return sorted(nodes, key=lambda n: int(n[5:]))


def _by_id(paths: ProbePaths) -> dict[str, str]:
    links = paths.dev / "v4l/by-id"
    out: dict[str, str] = {}
    if not is_dir(links):
        return out
    for name in list_dir(links):
        try:
            out.setdefault((links / name).readlink().name, f"/dev/v4l/by-id/{name}")
        except OSError:
            continue
    return out


def _usb_id(paths: ProbePaths, node: str) -> str | None:
    """vendor:product of the USB device above /sys/class/video4linux/<node>, if it is on USB."""
    try:
        current = (paths.sys / "class/video4linux" / node / "device").resolve(strict=True)
    except OSError:
        return None
    stop = paths.sys.resolve()
    for directory in (current, *current.parents):
        if directory in {stop, Path("/")}:
            break
        try:
            return f"{read_text(directory / 'idVendor').strip()}:{read_text(directory / 'idProduct').strip()}"
        except Unreadable:
            continue
    return None


def _scan(paths: ProbePaths) -> tuple[list[Camera], list[SkippedNode]]:
    cameras: list[Camera] = []
    skipped: list[SkippedNode] = []
    nodes = _video_nodes(paths)
    by_id = _by_id(paths) if nodes else {}
    for name in nodes:
        node = f"/dev/{name}"
        try:
            cap = parse_capability(paths.ioctl(paths.dev / name, VIDIOC_QUERYCAP, CAPABILITY_SIZE))
        except OSError as exc:
            skipped.append(SkippedNode(device_node=node, reason=f"VIDIOC_QUERYCAP: {exc.strerror or exc}"))
            continue
        except ValueError as exc:
            skipped.append(SkippedNode(device_node=node, reason=str(exc)))
            continue
        caps = cap.node_caps
        if not caps & _CAPTURE:
            kinds = ", ".join(cap_names(caps)) or "no capabilities"
            skipped.append(SkippedNode(device_node=node, reason=f"not a capture node ({kinds})"))
            continue
        cameras.append(
            Camera(
                device_node=node,
                driver=cap.driver,
                card=cap.card,
                bus_info=cap.bus_info,
                capabilities=cap_names(caps),
                usb_id=_usb_id(paths, name),
                by_id=by_id.get(name),
            )
        )
    return cameras, skipped


def collect_cameras(paths: ProbePaths) -> CamerasInfo:
    """Find the V4L2 capture devices."""
    unknown = Unknowns()
    found = unknown.attempt("cameras", lambda: _scan(paths))
    if found is None:
        unknown["skipped"] = unknown["cameras"]
    return CamerasInfo(
        cameras=found[0] if found else None,
        skipped=found[1] if found else None,
        unknown=dict(unknown),
    )
