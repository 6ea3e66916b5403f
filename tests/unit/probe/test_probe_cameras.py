"""V4L2 detection decodes real VIDIOC_QUERYCAP answers and keeps capture nodes only."""

import errno
import os
from pathlib import Path

import pytest

from edgefleet.probe.cameras import CAPABILITY_SIZE, VIDIOC_QUERYCAP, collect_cameras, parse_capability
from edgefleet.testing.fake_devices import UVC_META_QUERYCAP, UVC_VIDEO_QUERYCAP
from edgefleet.testing.fake_tree import FakeTree, v4l2_capability


@pytest.mark.unit
def test_querycap_number_and_size_match_the_kernel_header() -> None:
    """_IOR('V', 0, struct v4l2_capability): direction read, size 104, type 'V', number 0."""
    assert CAPABILITY_SIZE == 104
    assert (2 << 30) | (CAPABILITY_SIZE << 16) | (ord("V") << 8) | 0 == VIDIOC_QUERYCAP


@pytest.mark.unit
def test_parse_recorded_uvc_answer() -> None:
    """The recorded 104 bytes decode to driver, card, bus, kernel version and node caps."""
    assert len(UVC_VIDEO_QUERYCAP) == 104
    cap = parse_capability(UVC_VIDEO_QUERYCAP)
    assert (cap.driver, cap.card, cap.bus_info, cap.version) == (
        "uvcvideo",
        "C922 Pro Stream Webcam",
        "usb-0000:00:14.0-6",
        "6.8.12",
    )
    assert cap.node_caps == 0x04200001
    assert parse_capability(UVC_META_QUERYCAP).node_caps & 0x1 == 0


@pytest.mark.unit
def test_wrong_size_is_refused() -> None:
    """An answer that is not 104 bytes is an error, not a misread."""
    with pytest.raises(ValueError, match="104 bytes"):
        parse_capability(UVC_VIDEO_QUERYCAP[:100])


def _tree(tmp_path: Path, answers: dict[str, bytes]) -> FakeTree:
    tree = FakeTree(tmp_path, ioctl_answers=answers)
    for name in ("video0", "video1", "video2", "video10"):
        tree.write(f"dev/{name}")
    return tree


@pytest.mark.unit
def test_capture_nodes_kept_others_skipped_with_reasons(tmp_path: Path) -> None:
    """Multi-planar ISP capture is kept; M2M codec, node without device_caps, failing ioctl handled."""
    isp = v4l2_capability(
        driver="rkisp_v6",
        card="rkisp_mainpath",
        bus_info="platform:rkisp0-vir0",
        version=0x050A00,
        capabilities=0x84201000,
        device_caps=0x04201000,
    )
    codec = v4l2_capability(
        driver="hantro-vpu",
        card="rockchip,rk3588-vpu",
        bus_info="platform:fdb50000.vpu",
        version=0x050A00,
        capabilities=0x84204000,
        device_caps=0x04204000,
    )
    legacy = v4l2_capability(  # no DEVICE_CAPS bit: the device-wide capabilities apply to the node
        driver="bttv",
        card="BT878 video",
        bus_info="PCI:0000:05:00.0",
        version=0x030200,
        capabilities=0x05000001,
        device_caps=0,
    )
    tree = _tree(tmp_path, {"video0": isp, "video1": codec, "video10": legacy})
    info = collect_cameras(tree.probe_paths())
    assert [c.device_node for c in info.cameras or []] == ["/dev/video0", "/dev/video10"]
    assert "video_capture_mplane" in (info.cameras or [])[0].capabilities
    skipped = {s.device_node: s.reason for s in info.skipped or []}
    assert "video_m2m_mplane" in skipped["/dev/video1"]
    assert skipped["/dev/video2"] == f"VIDIOC_QUERYCAP: {os.strerror(errno.ENOTTY)}"


@pytest.mark.unit
def test_no_video_nodes_is_an_empty_list(tmp_path: Path) -> None:
    """A /dev without video nodes: no cameras, nothing unknown."""
    (tmp_path / "dev").mkdir()
    info = collect_cameras(FakeTree(tmp_path).probe_paths())
    assert (info.cameras, info.skipped, info.unknown) == ([], [], {})
