"""Fake roots of real edge machines, to run ``edgefleet probe`` against in tests.

Each builder writes a tree under ``root`` that imitates what the kernel of that machine shows
(``/proc``, ``/sys``, ``/dev``, the device tree, ``/etc``) and returns the :class:`FakeTree`;
``tree.probe_paths()`` is what :func:`edgefleet.probe.inventory.collect` takes::

    inventory = collect(jetson_orin_nano(tmp_path).probe_paths())

- :func:`jetson_orin_nano`: device tree ``nvidia,tegra234``, ``/etc/nv_tegra_release``, GPU load file.
- :func:`raspberry_pi5_hailo8l`: a Pi 5 with a Hailo-8L on PCIe (1e60:2864, ``/dev/hailo0``).
- :func:`x86_intel_npu_uvc`: a Meteor Lake laptop with the Intel NPU (8086:7d1d, ``ivpu`` on
  ``/dev/accel/accel0``), an iGPU and a UVC camera (two ``/dev/video`` nodes, one metadata-only,
  answering recorded ``VIDIOC_QUERYCAP`` bytes).
- :func:`rk3588_cgroup_v1`: an RK3588 board on its vendor BSP kernel with v1 cgroup hierarchies only.
"""

from __future__ import annotations

from pathlib import Path

from edgefleet.testing.fake_tree import FakeTree, fake_onnxruntime, v4l2_capability, write_linux_base

__all__ = [
    "UVC_META_QUERYCAP",
    "UVC_VIDEO_QUERYCAP",
    "jetson_orin_nano",
    "raspberry_pi5_hailo8l",
    "rk3588_cgroup_v1",
    "x86_intel_npu_uvc",
]

_DEBIAN12 = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
_UBUNTU2204 = 'PRETTY_NAME="Ubuntu 22.04.5 LTS"\nID=ubuntu\nVERSION_ID="22.04"\n'
_UBUNTU2404 = 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nID=ubuntu\nVERSION_ID="24.04"\n'
_ARM_FEATURES = (
    "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
)


def _arm_cpuinfo(parts: list[str], features: str = _ARM_FEATURES) -> str:
    """``/proc/cpuinfo`` of an arm64 kernel: no model name, implementer and part per CPU."""
    blocks = [
        f"processor\t: {n}\nBogoMIPS\t: 108.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
        f"CPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: {part}\nCPU revision\t: 1\n"
        for n, part in enumerate(parts)
    ]
    return "\n".join(blocks) + "\n"


def _thermal(tree: FakeTree, zones: list[tuple[str, int]]) -> None:
    for n, (kind, millicelsius) in enumerate(zones):
        tree.files(f"sys/class/thermal/thermal_zone{n}", {"type": f"{kind}\n", "temp": f"{millicelsius}\n"})


def _pci_device(
    tree: FakeTree, bdf: str, *, vendor: str, device: str, klass: str, driver: str | None, host: str
) -> str:
    """A PCI function under ``sys/devices/<host>/<bdf>`` with its ``sys/bus/pci`` link and driver."""
    real = f"sys/devices/{host}/{bdf}"
    tree.files(real, {"vendor": f"0x{vendor}\n", "device": f"0x{device}\n", "class": f"0x{klass}\n"})
    tree.link(f"sys/bus/pci/devices/{bdf}", real)
    if driver is not None:
        tree.mkdir(f"sys/bus/pci/drivers/{driver}")
        tree.link(f"{real}/driver", f"sys/bus/pci/drivers/{driver}")
    return real


def _char_device(tree: FakeTree, klass: str, name: str, parent: str, dev_node: str) -> None:
    """A class device (``sys/class/<klass>/<name>``) under ``parent`` with its ``/dev`` node."""
    real = f"{parent}/{klass}/{name}"
    tree.write(f"{real}/dev", "261:0\n")
    tree.link(f"{real}/device", parent)
    tree.link(f"sys/class/{klass}/{name}", real)
    tree.write(dev_node)


def jetson_orin_nano(root: Path) -> FakeTree:
    """A Jetson Orin Nano developer kit on JetPack 6 (L4T R36.4), ONNX Runtime with TensorRT and CUDA."""
    tree = FakeTree(root)
    write_linux_base(
        tree,
        hostname="orin-nano",
        release="5.15.148-tegra",
        version="#1 SMP PREEMPT Mon Jun 16 08:24:48 PDT 2025",
        cpuinfo=_arm_cpuinfo(["0xd42"] * 6, _ARM_FEATURES + " uscat ilrcpc flagm paca pacg"),
        cpus=6,
        cores_per_package=6,
        mem_total_kib=7_620_240,
        os_release=_UBUNTU2204,
        arch="aarch64",
    )
    tree.write("proc/device-tree/model", b"NVIDIA Jetson Orin Nano Developer Kit\0")
    tree.write(
        "proc/device-tree/compatible", b"nvidia,p3768-0000+p3767-0005\0nvidia,p3767-0005\0nvidia,tegra234\0"
    )
    tree.write(
        "etc/nv_tegra_release",
        "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, "
        "DATE: Fri Sep 13 04:36:44 UTC 2024\n# KERNEL_VARIANT: oot\n",
    )
    tree.write("sys/devices/platform/bus@0/17000000.gpu/load", "312\n")
    tree.write("dev/nvgpu/igpu0/ctrl")
    tree.write("dev/nvhost-ctrl-gpu")
    _thermal(tree, [("cpu-thermal", 47_500), ("gpu-thermal", 46_281), ("tj-thermal", 48_125)])
    tree.modules["onnxruntime"] = fake_onnxruntime(
        "1.19.0", ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    tree.landlock = None
    return tree


def raspberry_pi5_hailo8l(root: Path) -> FakeTree:
    """A Raspberry Pi 5 with the AI Kit: a Hailo-8L on PCIe (1e60:2864) driven by hailo_pci."""
    tree = FakeTree(root)
    write_linux_base(
        tree,
        hostname="pi5",
        release="6.6.51+rpt-rpi-2712",
        version="#1 SMP PREEMPT Debian 1:6.6.51-1+rpt3 (2024-10-08)",
        cpuinfo=_arm_cpuinfo(["0xd0b"] * 4),
        cpus=4,
        mem_total_kib=8_245_008,
        os_release=_DEBIAN12,
        arch="aarch64",
        governor="ondemand",
    )
    tree.write("proc/device-tree/model", b"Raspberry Pi 5 Model B Rev 1.0\0")
    tree.write("proc/device-tree/compatible", b"raspberrypi,5-model-b\0brcm,bcm2712\0")
    hailo = _pci_device(
        tree,
        "0001:01:00.0",
        vendor="1e60",
        device="2864",
        klass="0b4000",
        driver="hailo_pci",
        host="platform/axi/1000110000.pcie/pci0001:00/0001:00:00.0",
    )
    _char_device(tree, "hailo_chardev", "hailo0", hailo, "dev/hailo0")
    _pci_device(
        tree,
        "0002:01:00.0",
        vendor="1de4",
        device="0001",
        klass="020000",
        driver="rp1",
        host="platform/axi/1000120000.pcie/pci0002:00/0002:00:00.0",
    )
    _thermal(tree, [("cpu-thermal", 52_350)])
    tree.tools["hailortcli"] = "/usr/bin/hailortcli"
    tree.libraries["hailort"] = "libhailort.so.4.19.0"
    tree.landlock = 4
    return tree


# Recorded from a Logitech C922 (uvcvideo, kernel 6.8.12): the capture node and the metadata node.
UVC_VIDEO_QUERYCAP = v4l2_capability(
    driver="uvcvideo",
    card="C922 Pro Stream Webcam",
    bus_info="usb-0000:00:14.0-6",
    version=0x06080C,
    capabilities=0x84A00001,
    device_caps=0x04200001,
)
UVC_META_QUERYCAP = v4l2_capability(
    driver="uvcvideo",
    card="C922 Pro Stream Webcam",
    bus_info="usb-0000:00:14.0-6",
    version=0x06080C,
    capabilities=0x84A00001,
    device_caps=0x04A00000,
)


def x86_intel_npu_uvc(root: Path) -> FakeTree:
    """A Meteor Lake laptop: Intel NPU on /dev/accel/accel0 (ivpu), an iGPU, a UVC camera,
    UEFI Secure Boot, lockdown, IMA and a TPM 2.0."""
    tree = FakeTree(root)
    flags = (
        "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 "
        "ss ht syscall nx pdpe1gb rdtscp lm constant_tsc pni pclmulqdq ssse3 fma cx16 sse4_1 sse4_2 x2apic "
        "movbe popcnt aes xsave avx f16c rdrand lahf_lm abm avx2 smep bmi1 bmi2 erms invpcid rdseed adx smap "
        "clflushopt clwb sha_ni xsaveopt xsavec xgetbv1 xsaves avx_vnni umip waitpkg gfni vaes vpclmulqdq "
        "rdpid movdiri movdir64b"
    )
    cpuinfo = "\n".join(
        f"processor\t: {n}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 170\n"
        f"model name\t: Intel(R) Core(TM) Ultra 7 155H\nphysical id\t: 0\ncore id\t\t: {n // 2}\n"
        f"flags\t\t: {flags}\n"
        for n in range(4)
    )
    write_linux_base(
        tree,
        hostname="npu-laptop",
        release="6.8.0-45-generic",
        version="#45-Ubuntu SMP PREEMPT_DYNAMIC Fri Aug 30 12:02:04 UTC 2024",
        cpuinfo=cpuinfo + "\n",
        cpus=4,
        mem_total_kib=32_498_312,
        os_release=_UBUNTU2404,
        arch="x86_64",
        governor="powersave",
        cmdline="BOOT_IMAGE=/vmlinuz-6.8.0-45-generic root=UUID=0c7d ro quiet splash",
    )
    for n in range(4):
        tree.write(f"sys/devices/system/cpu/cpu{n}/topology/core_id", f"{n // 2}\n")
        tree.write(f"sys/devices/system/cpu/cpu{n}/cpufreq/scaling_driver", "intel_pstate\n")
    tree.write("sys/kernel/debug/sched/preempt", "none (voluntary) full lazy\n")
    tree.files("sys/class/dmi/id", {"sys_vendor": "Dell Inc.\n", "product_name": "XPS 14 9440\n"})
    npu = _pci_device(
        tree,
        "0000:00:0b.0",
        vendor="8086",
        device="7d1d",
        klass="120000",
        driver="intel_vpu",
        host="pci0000:00",
    )
    _char_device(tree, "accel", "accel0", npu, "dev/accel/accel0")
    gpu = _pci_device(
        tree, "0000:00:02.0", vendor="8086", device="7d55", klass="030000", driver="i915", host="pci0000:00"
    )
    _char_device(tree, "drm", "renderD128", gpu, "dev/dri/renderD128")
    _pci_device(
        tree,
        "0000:00:14.0",
        vendor="8086",
        device="7e7d",
        klass="0c0330",
        driver="xhci_hcd",
        host="pci0000:00",
    )
    # the camera: USB device 3-6, interface 3-6:1.0, two video4linux nodes
    usb = "sys/devices/pci0000:00/0000:00:14.0/usb3/3-6"
    tree.files(usb, {"idVendor": "046d\n", "idProduct": "085c\n", "product": "C922 Pro Stream Webcam\n"})
    tree.files(usb, {"busnum": "3\n", "devnum": "4\n"})
    tree.link("sys/bus/usb/devices/3-6", usb)
    for n, answer in ((0, UVC_VIDEO_QUERYCAP), (1, UVC_META_QUERYCAP)):
        real = f"{usb}/3-6:1.0/video4linux/video{n}"
        tree.files(real, {"name": "C922 Pro Stream Webcam\n", "index": f"{n}\n"})
        tree.link(f"{real}/device", f"{usb}/3-6:1.0")
        tree.link(f"sys/class/video4linux/video{n}", real)
        tree.write(f"dev/video{n}")
        tree.ioctl_answers[f"video{n}"] = answer
        tree.link(f"dev/v4l/by-id/usb-046d_C922_Pro_Stream_Webcam_A1B2C3D4-video-index{n}", f"dev/video{n}")
    tree.files("sys/class/power_supply/AC", {"type": "Mains\n", "online": "1\n"})
    tree.files(
        "sys/class/power_supply/BAT0", {"type": "Battery\n", "status": "Charging\n", "capacity": "81\n"}
    )
    _thermal(tree, [("acpitz", 41_000), ("x86_pkg_temp", 55_000)])
    # boot integrity: UEFI Secure Boot on, lockdown integrity, IMA, a TPM 2.0
    efivar = "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
    tree.write(efivar, bytes([0x06, 0x00, 0x00, 0x00, 0x01]))
    tree.write("sys/kernel/security/lsm", "lockdown,capability,landlock,yama,apparmor,ima,evm")
    tree.write("sys/kernel/security/lockdown", "none [integrity] confidentiality\n")
    tree.write("sys/kernel/security/ima/runtime_measurements_count", "1\n")
    tree.write("sys/class/tpm/tpm0/tpm_version_major", "2\n")
    tree.write("dev/tpmrm0")
    tree.write("etc/OpenCL/vendors/intel.icd", "libigdrcl.so\n")
    tree.modules["onnxruntime"] = fake_onnxruntime(
        "1.19.0", ["OpenVINOExecutionProvider", "CPUExecutionProvider"]
    )
    tree.landlock = 4
    return tree


def rk3588_cgroup_v1(root: Path) -> FakeTree:
    """An RK3588 board on the vendor 5.10 BSP kernel, booted with v1 cgroup hierarchies only (no cgroup2),
    its NPU driven by the vendor ``rknpu`` driver; no ONNX Runtime installed."""
    tree = FakeTree(root)
    write_linux_base(
        tree,
        hostname="rock5b",
        release="5.10.160-rockchip-rk3588",
        version="#1 SMP Mon Jan 15 10:17:03 UTC 2024",
        cpuinfo=_arm_cpuinfo(["0xd05"] * 4 + ["0xd0b"] * 4),
        cpus=8,
        mem_total_kib=16_069_448,
        os_release=_DEBIAN12,
        cgroup="v1",
        cgroup_path="/",
        cmdline="root=/dev/mmcblk1p2 rw rootwait systemd.unified_cgroup_hierarchy=0",
        arch=None,
    )
    tree.write("proc/device-tree/model", b"Radxa ROCK 5B\0")
    tree.write("proc/device-tree/compatible", b"radxa,rock-5b\0rockchip,rk3588\0")
    tree.write("proc/device-tree/npu@fdab0000/compatible", b"rockchip,rk3588-rknpu\0")
    tree.write("sys/kernel/debug/rknpu/version", "RKNPU driver: v0.9.6\n")
    tree.write("sys/kernel/debug/rknpu/load", "NPU load:  Core0:  0%, Core1:  0%, Core2:  0%,\n")
    _thermal(tree, [("soc-thermal", 38_846), ("bigcore0-thermal", 38_846), ("npu-thermal", 37_923)])
    tree.modules["rknnlite"] = None
    return tree
