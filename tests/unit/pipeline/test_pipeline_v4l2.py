"""V4L2 negotiation against recorded ioctl structure bytes of a UVC webcam (no camera here)."""

from __future__ import annotations

import errno
import struct
from pathlib import Path

import pytest

from edgefleet.pipeline.errors import SourceNotFoundError, SourceUnavailableError
from edgefleet.pipeline.sources import v4l2
from edgefleet.pipeline.sources.v4l2 import V4l2Device, V4l2Source, fourcc, negotiate
from edgefleet.pipeline.spec import V4l2SourceSpec

pytestmark = pytest.mark.unit

# What a USB webcam (uvcvideo) answered, byte for byte (x86_64 layouts).
QUERYCAP = bytes.fromhex(
    "757663766964656f000000000000000048442057656263616d3a2048442057656263616d000000000000000000000000"
    "7573622d303030303a30303a31342e302d310000000000000000000000000000000606000100a0840100200400000000"
    "0000000000000000"
)
ENUM_FMT = [
    bytes.fromhex(
        "0000000001000000010000004d6f74696f6e2d4a5045470000000000000000000000000000000000000000004d4a5047"
        "00000000000000000000000000000000"
    ),
    bytes.fromhex(
        "0100000001000000000000005955595620343a323a32000000000000000000000000000000000000000000005955595600"
        "000000000000000000000000000000"
    ),
]
ENUM_FRAMESIZES = {
    "MJPG": [
        bytes.fromhex(
            "000000004d4a50470100000000050000d0020000000000000000000000000000000000000000000000000000"
        ),
        bytes.fromhex(
            "010000004d4a50470100000080020000e0010000000000000000000000000000000000000000000000000000"
        ),
        bytes.fromhex(
            "020000004d4a50470100000040010000f0000000000000000000000000000000000000000000000000000000"
        ),
    ],
    "YUYV": [
        bytes.fromhex(
            "00000000595559560100000080020000e0010000000000000000000000000000000000000000000000000000"
        ),
        bytes.fromhex(
            "01000000595559560100000040010000f0000000000000000000000000000000000000000000000000000000"
        ),
    ],
}
ENUM_FRAMEINTERVALS = {
    (640, 480): [
        bytes.fromhex(
            "000000004d4a504780020000e001000001000000010000001e000000000000000000000000000000000000000000000000000000"
        ),
        bytes.fromhex(
            "010000004d4a504780020000e001000001000000010000000f000000000000000000000000000000000000000000000000000000"
        ),
    ],
    (1280, 720): [
        bytes.fromhex(
            "000000004d4a504700050000d002000001000000010000001e000000000000000000000000000000000000000000000000000000"
        )
    ],
}


class RecordedCamera:
    """Answers the V4L2 ioctls from the recorded bytes, like the driver: EINVAL past the last entry."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.format: tuple[int, int, int] | None = None
        self.timeperframe: tuple[int, int] | None = None

    def __call__(self, fd: int, request: int, buf: bytearray) -> int:
        assert fd >= 0
        self.calls.append(request)
        index = struct.unpack_from("<I", buf, 0)[0]
        if request == v4l2.VIDIOC_QUERYCAP:
            assert len(buf) == 104
            buf[:] = QUERYCAP
        elif request == v4l2.VIDIOC_ENUM_FMT:
            assert len(buf) == 64
            self._answer(buf, ENUM_FMT, index)
        elif request == v4l2.VIDIOC_ENUM_FRAMESIZES:
            assert len(buf) == 44
            pix = struct.unpack_from("<I", buf, 4)[0].to_bytes(4, "little").decode()
            self._answer(buf, ENUM_FRAMESIZES.get(pix, []), index)
        elif request == v4l2.VIDIOC_ENUM_FRAMEINTERVALS:
            assert len(buf) == 52
            w, h = struct.unpack_from("<II", buf, 8)
            self._answer(buf, ENUM_FRAMEINTERVALS.get((w, h), []), index)
        elif request == v4l2.VIDIOC_S_FMT:
            assert len(buf) == 208
            w, h, pix = struct.unpack_from("<III", buf, 8)
            self.format = (w, h, pix)
            struct.pack_into("<II", buf, 24, w * 2, w * h * 2)  # bytesperline, sizeimage filled in
        elif request == v4l2.VIDIOC_S_PARM:
            assert len(buf) == 204
            num, den = struct.unpack_from("<II", buf, 12)
            fps = den / num
            struct.pack_into("<III", buf, 4, v4l2.CAPABILITY_TIMEPERFRAME, 0, 1)
            struct.pack_into("<I", buf, 16, 30 if fps > 22 else 15)  # the driver rounds to what it has
            self.timeperframe = (1, 30 if fps > 22 else 15)
        else:
            raise OSError(errno.ENOTTY, "inappropriate ioctl")
        return 0

    @staticmethod
    def _answer(buf: bytearray, table: list[bytes], index: int) -> None:
        if index >= len(table):
            raise OSError(errno.EINVAL, "Invalid argument")
        buf[:] = table[index]


def test_pipeline_v4l2_ioctl_numbers_match_the_kernel_headers() -> None:
    assert v4l2.VIDIOC_QUERYCAP == 0x80685600
    assert v4l2.VIDIOC_ENUM_FMT == 0xC0405602
    assert v4l2.VIDIOC_S_FMT == 0xC0D05605
    assert v4l2.VIDIOC_ENUM_FRAMESIZES == 0xC02C564A
    assert v4l2.VIDIOC_ENUM_FRAMEINTERVALS == 0xC034564B
    # _IOWR('V', 22, struct v4l2_streamparm) with sizeof == 204
    assert (3 << 30) | (204 << 16) | (ord("V") << 8) | 22 == v4l2.VIDIOC_S_PARM


def test_pipeline_v4l2_parses_capability_formats_sizes_and_intervals() -> None:
    device = V4l2Device(3, ioctl=RecordedCamera())
    cap = device.query_capability()
    assert (cap.driver, cap.card, cap.bus_info) == ("uvcvideo", "HD Webcam: HD Webcam", "usb-0000:00:14.0-1")
    assert cap.version == 0x060600
    assert cap.can_capture
    assert cap.effective == 0x04200001  # DEVICE_CAPS set: the node's own caps count
    formats = device.formats()
    assert [(f.pixelformat, f.description, f.flags) for f in formats] == [
        ("MJPG", "Motion-JPEG", 1),
        ("YUYV", "YUYV 4:2:2", 0),
    ]
    assert [(s.width, s.height) for s in device.frame_sizes("MJPG")] == [(1280, 720), (640, 480), (320, 240)]
    assert [(s.width, s.height) for s in device.frame_sizes("YUYV")] == [(640, 480), (320, 240)]
    assert [i.fps for i in device.frame_intervals("MJPG", 640, 480)] == [30.0, 15.0]
    assert fourcc("MJPG") == 0x47504A4D


def test_pipeline_v4l2_negotiates_nearest_size_and_rate_and_sets_them() -> None:
    camera = RecordedCamera()
    got = negotiate(V4l2Device(3, ioctl=camera), width=600, height=400, fps=25, prefer=None)
    assert (got.pixelformat, got.width, got.height) == ("MJPG", 640, 480)
    assert got.fps == 30.0
    assert camera.format == (640, 480, fourcc("MJPG"))
    assert got.ffmpeg_options == {"input_format": "mjpeg", "video_size": "640x480", "framerate": "30"}
    slow = negotiate(V4l2Device(3, ioctl=RecordedCamera()), width=320, height=240, fps=10, prefer="YUYV")
    assert (slow.pixelformat, slow.width, slow.height) == ("YUYV", 320, 240)


def test_pipeline_v4l2_refuses_a_format_the_camera_does_not_offer() -> None:
    with pytest.raises(SourceUnavailableError, match="does not offer H264; it offers: MJPG, YUYV"):
        negotiate(V4l2Device(3, ioctl=RecordedCamera()), width=640, height=480, fps=30, prefer="H264")


def test_pipeline_v4l2_missing_camera_is_a_clear_not_found_error(tmp_path: Path) -> None:
    spec = V4l2SourceSpec(kind="v4l2", name="door", device=str(tmp_path / "video7"))
    source = V4l2Source(spec, dev_dir=tmp_path)
    with pytest.raises(
        SourceNotFoundError, match=r"camera .*video7 does not exist; cameras here: none"
    ) as info:
        source.open()
    assert info.value.code == "pipeline.camera_not_found"


def test_pipeline_v4l2_source_open_negotiates_through_the_injected_ioctl(tmp_path: Path) -> None:
    node = tmp_path / "video0"
    node.write_bytes(b"")
    camera = RecordedCamera()
    spec = V4l2SourceSpec(kind="v4l2", name="door", device=str(node), width=1280, height=720, fps=30)
    source = V4l2Source(spec, ioctl=camera, dev_dir=tmp_path)
    source.open()
    assert source.capability is not None
    assert source.capability.driver == "uvcvideo"
    assert source.negotiated is not None
    assert (source.negotiated.width, source.negotiated.height, source.negotiated.fps) == (1280, 720, 30.0)
    assert camera.calls[0] == v4l2.VIDIOC_QUERYCAP
