"""V4L2 cameras: capability check and format/size/rate negotiation through the real ioctls
(``VIDIOC_QUERYCAP``, ``ENUM_FMT``, ``ENUM_FRAMESIZES``, ``ENUM_FRAMEINTERVALS``, ``S_FMT``,
``S_PARM``), then capture through FFmpeg's ``video4linux2`` input with the negotiated settings.

The ioctl function is a parameter (``fcntl.ioctl`` by default) so negotiation runs against
recorded structure bytes in tests. Structure layouts are those of x86_64/aarch64 Linux.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgefleet.pipeline.errors import SourceNotFoundError, SourceUnavailableError
from edgefleet.pipeline.sources.base import Backoff, SourceContext
from edgefleet.pipeline.spec import V4l2SourceSpec

__all__ = [
    "Capability",
    "FormatDesc",
    "FrameInterval",
    "FrameSize",
    "Negotiated",
    "V4l2Device",
    "V4l2Source",
    "fourcc",
    "fourcc_text",
    "negotiate",
]

log = logging.getLogger(__name__)

VIDIOC_QUERYCAP = 0x80685600
VIDIOC_ENUM_FMT = 0xC0405602
VIDIOC_G_FMT = 0xC0D05604
VIDIOC_S_FMT = 0xC0D05605
VIDIOC_G_PARM = 0xC0CC5615
VIDIOC_S_PARM = 0xC0CC5616
VIDIOC_ENUM_FRAMESIZES = 0xC02C564A
VIDIOC_ENUM_FRAMEINTERVALS = 0xC034564B

BUF_TYPE_VIDEO_CAPTURE = 1
CAP_VIDEO_CAPTURE = 0x1
CAP_READWRITE = 0x1000000
CAP_STREAMING = 0x4000000
CAP_DEVICE_CAPS = 0x80000000
FRMSIZE_TYPE_DISCRETE = 1
FRMIVAL_TYPE_DISCRETE = 1
CAPABILITY_TIMEPERFRAME = 0x1000

_CAPABILITY = struct.Struct("<16s32s32sIII12x")  # 104 bytes
_FMTDESC = struct.Struct("<III32sII12x")  # 64 bytes
_FRMSIZE = struct.Struct("<III6I8x")  # 44 bytes
_FRMIVAL = struct.Struct("<IIIII6I8x")  # 52 bytes
_FORMAT_SIZE = 208  # type, 4 bytes of padding, then a 200-byte union (v4l2_pix_format first)
_PIX = struct.Struct("<12I")
_STREAMPARM_SIZE = 204  # type, then a 200-byte union (v4l2_captureparm first)
_CAPTUREPARM = struct.Struct("<IIIIII")

# FourCC → FFmpeg's input_format name for the video4linux2 demuxer
_FFMPEG_FORMATS = {
    "MJPG": "mjpeg", "JPEG": "mjpeg", "YUYV": "yuyv422", "UYVY": "uyvy422", "NV12": "nv12",
    "YU12": "yuv420p", "RGB3": "rgb24", "BGR3": "bgr24", "GREY": "gray", "H264": "h264",
}  # fmt: skip

IoctlFn = Callable[[int, int, bytearray], Any]


def fourcc(text: str) -> int:
    """``"MJPG"`` → its 32-bit little-endian code."""
    raw = text.encode("ascii").ljust(4)[:4]
    return int.from_bytes(raw, "little")


def fourcc_text(code: int) -> str:
    return code.to_bytes(4, "little").decode("ascii", "replace").rstrip()


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


@dataclass(frozen=True)
class Capability:
    driver: str
    card: str
    bus_info: str
    version: int
    capabilities: int
    device_caps: int

    @property
    def effective(self) -> int:
        """The device node's own caps when the driver reports them, else the whole device's."""
        return self.device_caps if self.capabilities & CAP_DEVICE_CAPS else self.capabilities

    @property
    def can_capture(self) -> bool:
        return bool(self.effective & CAP_VIDEO_CAPTURE)


@dataclass(frozen=True)
class FormatDesc:
    index: int
    flags: int
    description: str
    pixelformat: str


@dataclass(frozen=True)
class FrameSize:
    """A discrete size, or a stepwise range (``step_* > 0``)."""

    width: int
    height: int
    max_width: int = 0
    max_height: int = 0
    step_width: int = 0
    step_height: int = 0

    @property
    def stepwise(self) -> bool:
        return self.max_width > 0


@dataclass(frozen=True)
class FrameInterval:
    """Seconds per frame as a fraction; ``fps`` is its inverse."""

    numerator: int
    denominator: int

    @property
    def fps(self) -> float:
        return self.denominator / self.numerator if self.numerator else 0.0


@dataclass(frozen=True)
class Negotiated:
    pixelformat: str
    width: int
    height: int
    fps: float

    @property
    def ffmpeg_options(self) -> dict[str, str]:
        return {
            "input_format": _FFMPEG_FORMATS.get(self.pixelformat, self.pixelformat.lower()),
            "video_size": f"{self.width}x{self.height}",
            "framerate": f"{self.fps:g}",
        }


class V4l2Device:
    """The ioctls of one open ``/dev/videoN`` (``fd``), through an injectable ``ioctl``."""

    def __init__(self, fd: int, *, ioctl: IoctlFn = fcntl.ioctl) -> None:
        self.fd = fd
        self._ioctl = ioctl

    def _call(self, request: int, buf: bytearray) -> bool:
        """Run one ioctl in place; ``False`` when the driver answers EINVAL (end of an enumeration)."""
        try:
            self._ioctl(self.fd, request, buf)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                return False
            raise
        return True

    def query_capability(self) -> Capability:
        buf = bytearray(_CAPABILITY.size)
        if not self._call(VIDIOC_QUERYCAP, buf):
            raise SourceUnavailableError("the device does not answer VIDIOC_QUERYCAP: not a V4L2 device")
        d, c, b, version, caps, dcaps = _CAPABILITY.unpack(buf)
        return Capability(_cstr(d), _cstr(c), _cstr(b), version, caps, dcaps)

    def formats(self) -> list[FormatDesc]:
        out: list[FormatDesc] = []
        for index in range(256):
            buf = bytearray(_FMTDESC.pack(index, BUF_TYPE_VIDEO_CAPTURE, 0, b"", 0, 0))
            if not self._call(VIDIOC_ENUM_FMT, buf):
                break
            i, _type, flags, desc, pix, _mbus = _FMTDESC.unpack(buf)
            out.append(FormatDesc(i, flags, _cstr(desc), fourcc_text(pix)))
        return out

    def frame_sizes(self, pixelformat: str) -> list[FrameSize]:
        out: list[FrameSize] = []
        for index in range(256):
            buf = bytearray(_FRMSIZE.pack(index, fourcc(pixelformat), 0, 0, 0, 0, 0, 0, 0))
            if not self._call(VIDIOC_ENUM_FRAMESIZES, buf):
                break
            _i, _pix, kind, a, b, c, d, e, f = _FRMSIZE.unpack(buf)
            if kind == FRMSIZE_TYPE_DISCRETE:
                out.append(FrameSize(a, b))
            else:  # stepwise/continuous: min_w, max_w, step_w, min_h, max_h, step_h; one entry says all
                out.append(FrameSize(a, d, b, e, max(c, 1), max(f, 1)))
                break
        return out

    def frame_intervals(self, pixelformat: str, width: int, height: int) -> list[FrameInterval]:
        out: list[FrameInterval] = []
        for index in range(256):
            buf = bytearray(_FRMIVAL.pack(index, fourcc(pixelformat), width, height, 0, 0, 0, 0, 0, 0, 0))
            if not self._call(VIDIOC_ENUM_FRAMEINTERVALS, buf):
                break
            _i, _pix, _w, _h, kind, n1, d1, n2, d2, _n3, _d3 = _FRMIVAL.unpack(buf)
            if kind == FRMIVAL_TYPE_DISCRETE:
                out.append(FrameInterval(n1, d1))
            else:  # stepwise: the fastest (min) and slowest (max) intervals bound the range
                out.extend([FrameInterval(n1, d1), FrameInterval(n2, d2)])
                break
        return out

    def set_format(self, pixelformat: str, width: int, height: int) -> tuple[str, int, int]:
        """``VIDIOC_S_FMT``; the driver may adjust: what it accepted is returned."""
        buf = bytearray(_FORMAT_SIZE)
        struct.pack_into("<I", buf, 0, BUF_TYPE_VIDEO_CAPTURE)
        _PIX.pack_into(buf, 8, width, height, fourcc(pixelformat), 1, 0, 0, 0, 0, 0, 0, 0, 0)  # field = NONE
        if not self._call(VIDIOC_S_FMT, buf):
            raise SourceUnavailableError(f"the camera refused format {pixelformat} {width}x{height}")
        w, h, pix = _PIX.unpack_from(buf, 8)[:3]
        return fourcc_text(pix), w, h

    def set_fps(self, fps: float) -> float:
        """``VIDIOC_S_PARM`` with time-per-frame 1/fps (as 1000/fps*1000); the rate the driver set."""
        buf = bytearray(_STREAMPARM_SIZE)
        struct.pack_into("<I", buf, 0, BUF_TYPE_VIDEO_CAPTURE)
        _CAPTUREPARM.pack_into(buf, 4, 0, 0, 1000, round(fps * 1000), 0, 0)
        if not self._call(VIDIOC_S_PARM, buf):
            return 0.0
        _cap, _mode, num, den, _ext, _rb = _CAPTUREPARM.unpack_from(buf, 4)
        return den / num if num else 0.0


def _nearest_size(sizes: list[FrameSize], width: int, height: int) -> tuple[int, int]:
    best: tuple[int, int] | None = None
    for s in sizes:
        if s.stepwise:
            w = min(max(width, s.width), s.max_width)
            h = min(max(height, s.height), s.max_height)
            w -= (w - s.width) % s.step_width
            h -= (h - s.height) % s.step_height
            candidate = (w, h)
        else:
            candidate = (s.width, s.height)
        if best is None or _size_cost(candidate, width, height) < _size_cost(best, width, height):
            best = candidate
    return best if best is not None else (width, height)


def _size_cost(size: tuple[int, int], width: int, height: int) -> tuple[int, int]:
    # prefer sizes at least as large as asked (downscaling keeps detail), then the closest area
    too_small = int(size[0] < width or size[1] < height)
    return too_small, abs(size[0] * size[1] - width * height)


def negotiate(
    device: V4l2Device, *, width: int, height: int, fps: float, prefer: str | None = None
) -> Negotiated:
    """Pick a pixel format (``prefer`` if offered, else the first FFmpeg decodes), the size and
    rate nearest to those asked, set them, and return what the driver accepted."""
    formats = [f.pixelformat for f in device.formats()]
    if not formats:
        raise SourceUnavailableError("the camera lists no capture formats")
    if prefer is not None and prefer not in formats:
        raise SourceUnavailableError(f"the camera does not offer {prefer}; it offers: {', '.join(formats)}")
    pixelformat = prefer or next((f for f in formats if f in _FFMPEG_FORMATS), formats[0])
    w, h = _nearest_size(device.frame_sizes(pixelformat), width, height)
    intervals = device.frame_intervals(pixelformat, w, h)
    target = fps
    if intervals:
        rates = [i.fps for i in intervals if i.fps > 0]
        if len(intervals) == 2 and rates and not any(abs(r - fps) < 1e-6 for r in rates):
            target = min(max(fps, min(rates)), max(rates))  # a stepwise range: clamp into it
        else:
            target = min(rates, key=lambda r: abs(r - fps)) if rates else fps
    pixelformat, w, h = device.set_format(pixelformat, w, h)
    actual = device.set_fps(target) or target
    return Negotiated(pixelformat, w, h, round(actual, 3))


class V4l2Source:
    """A camera: negotiated with ioctls at :meth:`open`, captured by FFmpeg in :meth:`run`."""

    def __init__(
        self,
        spec: V4l2SourceSpec,
        *,
        ioctl: IoctlFn = fcntl.ioctl,
        open_fd: Callable[[str], int] = lambda p: os.open(p, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC),
        open_container: Callable[..., Any] | None = None,
        dev_dir: Path = Path("/dev"),
    ) -> None:
        self.name = spec.name
        self.spec = spec
        self._ioctl = ioctl
        self._open_fd = open_fd
        self._open_container = open_container
        self._dev_dir = dev_dir
        self.capability: Capability | None = None
        self.negotiated: Negotiated | None = None

    def open(self) -> None:
        path = self.spec.device
        if not Path(path).exists():
            present = sorted(p.name for p in self._dev_dir.glob("video*"))
            raise SourceNotFoundError(
                f"source {self.name!r}: camera {path} does not exist; "
                f"cameras here: {', '.join(present) or 'none'}",
                code="pipeline.camera_not_found",
                source=self.name,
                device=path,
            )
        try:
            fd = self._open_fd(path)
        except OSError as exc:
            raise SourceUnavailableError(
                f"source {self.name!r}: cannot open {path}: {exc}", source=self.name
            ) from exc
        try:
            device = V4l2Device(fd, ioctl=self._ioctl)
            self.capability = device.query_capability()
            if not self.capability.can_capture:
                raise SourceUnavailableError(
                    f"source {self.name!r}: {path} ({self.capability.card}) is not a video capture device",
                    source=self.name,
                )
            s = self.spec
            self.negotiated = negotiate(
                device, width=s.width, height=s.height, fps=s.fps, prefer=s.pixel_format
            )
            log.info("source %s: %s negotiated %s", self.name, path, self.negotiated)
        finally:
            os.close(fd)

    def close(self) -> None:
        """The capture container is closed by :meth:`run` in its own thread."""

    def run(self, ctx: SourceContext) -> None:
        import av

        if self.negotiated is None:
            self.open()
        assert self.negotiated is not None  # noqa: S101 - open() negotiated or raised
        opener = self._open_container or av.open
        backoff = Backoff(0.5, 10.0, 2.0)
        while not ctx.stop.is_set():
            try:
                container = opener(
                    self.spec.device, format="video4linux2", options=self.negotiated.ffmpeg_options
                )
            except (av.FFmpegError, OSError) as exc:
                ctx.up(False)
                delay = backoff.next_delay()
                log.warning("source %s: cannot open camera (%s); retry in %.1fs", self.name, str(exc), delay)
                ctx.stop.wait(delay)
                ctx.reconnected()
                continue
            try:
                ctx.up(True)
                for packet in container.demux(video=0):
                    if ctx.stop.is_set():
                        break
                    try:
                        frames = packet.decode()
                    except av.InvalidDataError:
                        ctx.drop("decode_error")
                        continue
                    for frame in frames:
                        ctx.emit(
                            np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8),
                            float(frame.time) if frame.time is not None else None,
                        )
                        backoff.reset()
            except (av.FFmpegError, OSError) as exc:
                log.warning("source %s: capture error: %s", self.name, str(exc))
            finally:
                container.close()
                del container
                ctx.up(False)
            if not ctx.stop.is_set():
                ctx.stop.wait(backoff.next_delay())
                ctx.reconnected()
