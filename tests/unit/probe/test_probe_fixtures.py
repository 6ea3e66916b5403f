"""The probe reads each imitated machine (edgefleet.testing.fake_devices) as that machine is."""

from pathlib import Path

import pytest

from edgefleet.probe.inventory import Inventory, collect
from edgefleet.testing import fake_devices


def _probe(build: object, root: Path) -> Inventory:
    return collect(build(root).probe_paths())  # type: ignore[operator]


@pytest.mark.unit
def test_jetson_orin_nano(tmp_path: Path) -> None:
    """Orin: tegra234 GPU with L4T release and load, Arm ISA, PREEMPT kernel, TensorRT and CUDA usable."""
    inv = _probe(fake_devices.jetson_orin_nano, tmp_path)
    assert inv.unknown == {}
    assert inv.host
    assert inv.host.model == "NVIDIA Jetson Orin Nano Developer Kit"
    assert inv.cpu
    assert inv.cpu.architecture == "aarch64"
    assert inv.cpu.model == "Cortex-A78AE"
    assert (inv.cpu.threads, inv.cpu.cores) == (6, 6)
    assert {"neon", "dotprod", "fp16"} <= set(inv.cpu.isa or [])
    assert inv.cpu.governor == "schedutil"
    assert inv.kernel
    assert inv.kernel.preempt == "full"
    assert inv.kernel.realtime is False
    assert inv.kernel.init_system == "systemd"
    assert inv.cgroups
    assert inv.cgroups.mode == "v2"
    assert inv.accelerators
    assert inv.accelerators.devices
    (gpu,) = inv.accelerators.devices
    assert (gpu.kind, gpu.vendor, gpu.bus) == ("gpu", "nvidia", "platform")
    assert "Orin" in gpu.model
    assert gpu.device_node == "/dev/nvgpu/igpu0/ctrl"
    assert gpu.details["l4t_release"] == "R36.4.0"
    assert gpu.details["gpu_load_permille"] == "312"
    assert gpu.runtimes == ["onnxruntime:TensorrtExecutionProvider", "onnxruntime:CUDAExecutionProvider"]
    assert gpu.usable_runtimes == gpu.runtimes
    assert inv.security
    assert inv.security.landlock_abi == 0
    assert inv.thermal
    assert [z.type for z in inv.thermal.zones or []] == [
        "cpu-thermal",
        "gpu-thermal",
        "tj-thermal",
    ]
    assert inv.thermal.zones
    assert inv.thermal.zones[1].celsius == pytest.approx(46.281)


@pytest.mark.unit
def test_raspberry_pi5_with_hailo8l(tmp_path: Path) -> None:
    """Pi 5: board model from the device tree, Hailo-8L on PCIe with /dev/hailo0, HailoRT usable, no ORT."""
    inv = _probe(fake_devices.raspberry_pi5_hailo8l, tmp_path)
    assert inv.host
    assert inv.host.model == "Raspberry Pi 5 Model B Rev 1.0"
    assert inv.host.compatible == ["raspberrypi,5-model-b", "brcm,bcm2712"]
    assert inv.cpu
    assert inv.cpu.model == "Cortex-A76"
    assert inv.cpu.threads == 4
    assert inv.cpu.governor == "ondemand"
    assert inv.accelerators
    assert inv.accelerators.devices is not None
    (hailo,) = inv.accelerators.devices  # the RP1 south bridge (1de4:0001) is not an accelerator
    assert (hailo.kind, hailo.vendor, hailo.model) == ("npu", "hailo", "Hailo-8/8L")
    assert (hailo.pci_id, hailo.address) == ("1e60:2864", "0001:01:00.0")
    assert (hailo.device_node, hailo.driver) == ("/dev/hailo0", "hailo_pci")
    assert hailo.runtimes == ["hailort"]
    assert hailo.usable_runtimes == ["hailort"]
    assert inv.runtimes
    assert inv.runtimes.onnxruntime
    assert inv.runtimes.onnxruntime.installed is False
    assert inv.thermal
    assert inv.thermal.zones
    assert inv.thermal.zones[0].celsius == pytest.approx(52.35)


@pytest.mark.unit
def test_x86_intel_npu_and_uvc_camera(tmp_path: Path) -> None:
    """Intel NPU on /dev/accel/accel0 with OpenVINO usable; one UVC camera, its metadata node skipped."""
    inv = _probe(fake_devices.x86_intel_npu_uvc, tmp_path)
    assert inv.host
    assert inv.host.model == "Dell Inc. XPS 14 9440"
    assert inv.cpu
    assert inv.cpu.vendor == "GenuineIntel"
    assert (inv.cpu.threads, inv.cpu.cores, inv.cpu.sockets) == (4, 2, 1)
    assert {"avx2", "avx_vnni", "fma"} <= set(inv.cpu.isa or [])
    assert "avx512f" not in (inv.cpu.isa or [])
    assert (inv.cpu.cpufreq_driver, inv.cpu.governor) == ("intel_pstate", "powersave")
    assert inv.kernel
    assert (inv.kernel.preempt, inv.kernel.preempt_dynamic) == ("voluntary", True)
    assert inv.accelerators
    assert inv.accelerators.devices
    by_kind = {d.kind: d for d in inv.accelerators.devices}
    npu = by_kind["npu"]
    assert (npu.vendor, npu.pci_id, npu.driver) == ("intel", "8086:7d1d", "intel_vpu")
    assert npu.device_node == "/dev/accel/accel0"
    assert "Meteor Lake" in npu.model
    assert npu.usable_runtimes == ["onnxruntime:OpenVINOExecutionProvider"]
    assert by_kind["gpu"].device_node == "/dev/dri/renderD128"
    assert [i.library for i in inv.accelerators.opencl_icds or []] == ["libigdrcl.so"]
    assert inv.cameras
    assert inv.cameras.cameras is not None
    (cam,) = inv.cameras.cameras
    assert cam.device_node == "/dev/video0"
    assert (cam.driver, cam.card, cam.usb_id) == ("uvcvideo", "C922 Pro Stream Webcam", "046d:085c")
    assert "video_capture" in cam.capabilities
    assert cam.by_id
    assert cam.by_id.endswith("-video-index0")
    assert [s.device_node for s in inv.cameras.skipped or []] == ["/dev/video1"]
    assert "meta_capture" in (inv.cameras.skipped or [])[0].reason
    sec = inv.security
    assert sec is not None
    assert (sec.secure_boot, sec.lockdown, sec.tpm, sec.tpm_version, sec.ima) == (
        "on",
        "integrity",
        "on",
        "2",
        "on",
    )
    assert sec.lsms
    assert "landlock" in sec.lsms
    assert inv.thermal
    assert inv.thermal.power_supplies
    bat = {p.name: p for p in inv.thermal.power_supplies}["BAT0"]
    assert (bat.status, bat.capacity_percent) == ("Charging", 81)


@pytest.mark.unit
def test_cgroup_v1_board(tmp_path: Path) -> None:
    """RK3588 BSP board: v1 hierarchies only (cpu,cpuacct co-mounted), rknpu NPU, no kernel.arch sysctl."""
    inv = _probe(fake_devices.rk3588_cgroup_v1, tmp_path)
    cg = inv.cgroups
    assert cg is not None
    assert cg.mode == "v1"
    assert cg.hierarchies
    assert all(h.version == 1 for h in cg.hierarchies)
    assert {"cpu", "cpuacct"} == set(next(h.controllers for h in cg.hierarchies if "cpu" in h.controllers))
    names = {c.name: c for c in cg.controllers or []}
    assert {"cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "freezer", "devices"} == set(names)
    assert all(c.version == 1 and c.enabled_for_children for c in names.values())
    assert names["cpu"].cgroup == "/sys/fs/cgroup/cpu,cpuacct"
    assert names["memory"].writable is True
    assert inv.cpu
    assert inv.cpu.architecture == "aarch64"
    assert inv.cpu.model == "Cortex-A55 + Cortex-A76"
    assert inv.kernel
    assert inv.kernel.preempt is None
    assert "no PREEMPT flavour" in inv.kernel.unknown["preempt"]
    assert inv.accelerators
    assert inv.accelerators.devices
    (npu,) = inv.accelerators.devices
    assert (npu.vendor, npu.kind, npu.driver, npu.address) == ("rockchip", "npu", "rknpu", "npu@fdab0000")
    assert npu.details["driver_version"] == "RKNPU driver: v0.9.6"
    assert npu.usable_runtimes == ["rknn"]
    assert inv.cameras
    assert inv.cameras.cameras == []
    assert inv.security
    assert inv.security.secure_boot is None
    assert "not booted through UEFI" in inv.security.unknown["secure_boot"]


@pytest.mark.unit
@pytest.mark.parametrize(
    "build",
    [
        fake_devices.jetson_orin_nano,
        fake_devices.raspberry_pi5_hailo8l,
        fake_devices.x86_intel_npu_uvc,
        fake_devices.rk3588_cgroup_v1,
    ],
)
def test_fixture_inventory_round_trips_through_json(build: object, tmp_path: Path) -> None:
    """The JSON of every fixture parses back into an equal Inventory."""
    inv = _probe(build, tmp_path)
    assert Inventory.model_validate_json(inv.model_dump_json()) == inv
