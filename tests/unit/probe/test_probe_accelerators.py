"""Accelerators from NVIDIA's driver and NVML, Coral USB, AMD XDNA, and the runtimes that can use them."""

import types
from pathlib import Path

import pytest

from edgefleet.probe.accelerators import collect_accelerators
from edgefleet.probe.inventory import collect
from edgefleet.probe.runtimes import OnnxRuntimeInfo, RuntimeInfo, RuntimesInfo, usable_runtimes
from edgefleet.testing.fake_tree import FakeTree, fake_onnxruntime

GPU_BDF = "0000:01:00.0"


def _nvidia_tree(tmp_path: Path) -> FakeTree:
    tree = FakeTree(tmp_path)
    real = f"sys/devices/pci0000:00/0000:00:01.0/{GPU_BDF}"
    tree.files(real, {"vendor": "0x10de\n", "device": "0x2331\n", "class": "0x030200\n"})
    tree.link(f"sys/bus/pci/devices/{GPU_BDF}", real)
    tree.mkdir("sys/bus/pci/drivers/nvidia")
    tree.link(f"{real}/driver", "sys/bus/pci/drivers/nvidia")
    audio = "sys/devices/pci0000:00/0000:00:01.0/0000:01:00.1"  # the GPU's HDMI audio function
    tree.files(audio, {"vendor": "0x10de\n", "device": "0x22a3\n", "class": "0x040300\n"})
    tree.link("sys/bus/pci/devices/0000:01:00.1", audio)
    tree.write(
        "proc/driver/nvidia/version",
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.90.07  Fri May 31 09:35:42 UTC 2024\n",
    )
    tree.write(
        f"proc/driver/nvidia/gpus/{GPU_BDF}/information",
        "Model: \t\t NVIDIA H100 PCIe\nIRQ:   \t\t 145\nDevice Minor: \t 0\nBus Location: \t 0000:01:00.0\n",
    )
    for node in ("nvidia0", "nvidiactl", "nvidia-uvm"):
        tree.write(f"dev/{node}")
    return tree


@pytest.mark.unit
def test_nvidia_dgpu_from_proc_driver(tmp_path: Path) -> None:
    """Without NVML: model, driver version, /dev/nvidia0 from /proc/driver/nvidia; audio function ignored."""
    info = collect_accelerators(_nvidia_tree(tmp_path).probe_paths())
    (gpu,) = info.devices or []
    assert (gpu.kind, gpu.vendor, gpu.pci_id, gpu.address) == ("gpu", "nvidia", "10de:2331", GPU_BDF)
    assert (gpu.model, gpu.device_node, gpu.driver) == ("NVIDIA H100 PCIe", "/dev/nvidia0", "nvidia")
    assert gpu.details["driver_version"] == "550.90.07"


def _fake_pynvml() -> types.ModuleType:
    """A module answering NVML's Python API (nvidia-ml-py) for one GPU."""
    nvml = types.ModuleType("pynvml")
    calls: list[str] = []
    nvml.calls = calls  # type: ignore[attr-defined]
    nvml.nvmlInit = lambda: calls.append("init")  # type: ignore[attr-defined]
    nvml.nvmlShutdown = lambda: calls.append("shutdown")  # type: ignore[attr-defined]
    nvml.nvmlSystemGetDriverVersion = lambda: "550.90.07"  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetCount = lambda: 1  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetHandleByIndex = lambda i: f"h{i}"  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetPciInfo = lambda _h: types.SimpleNamespace(busId=b"00000000:01:00.0")  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetName = lambda _h: "NVIDIA H100 80GB HBM3"  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetMemoryInfo = lambda _h: types.SimpleNamespace(total=85_520_809_984)  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetUUID = lambda _h: "GPU-5a1e0f0e-0000-0000-0000-000000000000"  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetMinorNumber = lambda _h: 0  # type: ignore[attr-defined]
    return nvml


@pytest.mark.unit
def test_nvidia_dgpu_through_nvml(tmp_path: Path) -> None:
    """With nvidia-ml-py importable: NVML's name, memory and UUID, one entry per GPU, NVML shut down."""
    tree = _nvidia_tree(tmp_path)
    nvml = _fake_pynvml()
    tree.modules["pynvml"] = nvml
    tree.modules["onnxruntime"] = fake_onnxruntime(
        "1.19.0", ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    inv = collect(tree.probe_paths())
    assert inv.accelerators is not None
    (gpu,) = inv.accelerators.devices or []
    assert gpu.model == "NVIDIA H100 80GB HBM3"
    assert gpu.details["memory_bytes"] == "85520809984"
    assert gpu.details["uuid"].startswith("GPU-")
    assert gpu.usable_runtimes == ["onnxruntime:CUDAExecutionProvider"]
    assert nvml.calls == ["init", "shutdown"]  # type: ignore[attr-defined]


@pytest.mark.unit
def test_nvml_failure_is_a_detail_not_a_crash(tmp_path: Path) -> None:
    """NVML that cannot start (no libnvidia-ml) leaves the /proc view and says why."""
    tree = _nvidia_tree(tmp_path)
    nvml = _fake_pynvml()

    def fail() -> None:
        raise OSError("libnvidia-ml.so.1: cannot open shared object file")

    nvml.nvmlInit = fail  # type: ignore[attr-defined]
    tree.modules["pynvml"] = nvml
    (gpu,) = collect_accelerators(tree.probe_paths()).devices or []
    assert gpu.model == "NVIDIA H100 PCIe"
    assert "libnvidia-ml.so.1" in gpu.details["nvml"]


@pytest.mark.unit
@pytest.mark.parametrize(("product", "firmware"), [("1a6e:089a", "not loaded"), ("18d1:9302", "loaded")])
def test_coral_usb_before_and_after_firmware(tmp_path: Path, product: str, firmware: str) -> None:
    """Coral USB is recognised under both ids, with its /dev/bus/usb node and the TFLite delegate."""
    vid, pid = product.split(":")
    tree = FakeTree(tmp_path)
    tree.files(
        "sys/devices/pci0000:00/0000:00:14.0/usb2/2-1",
        {"idVendor": vid, "idProduct": pid, "busnum": "2", "devnum": "5"},
    )
    tree.link("sys/bus/usb/devices/2-1", "sys/devices/pci0000:00/0000:00:14.0/usb2/2-1")
    tree.libraries["edgetpu"] = "libedgetpu.so.1"
    tree.modules["tflite_runtime"] = None
    inv = collect(tree.probe_paths())
    assert inv.accelerators is not None
    (tpu,) = inv.accelerators.devices or []
    assert (tpu.kind, tpu.vendor, tpu.bus, tpu.usb_id) == ("tpu", "google", "usb", product)
    assert tpu.device_node == "/dev/bus/usb/002/005"
    assert tpu.details["firmware"] == firmware
    assert tpu.usable_runtimes == ["tflite:libedgetpu"]


@pytest.mark.unit
def test_amd_xdna_and_unknown_accel_driver(tmp_path: Path) -> None:
    """An amdxdna accel node is an AMD NPU; an accel node of a driver not in the table is left out."""
    tree = FakeTree(tmp_path)
    for n, (bdf, device, driver) in enumerate(
        (("0000:c6:00.1", "1502", "amdxdna"), ("0000:c7:00.0", "abcd", "mystery"))
    ):
        real = f"sys/devices/pci0000:00/{bdf}"
        tree.files(real, {"vendor": "0x1022\n", "device": f"0x{device}\n", "class": "0x118000\n"})
        tree.link(f"sys/bus/pci/devices/{bdf}", real)
        tree.mkdir(f"sys/bus/pci/drivers/{driver}")
        tree.link(f"{real}/driver", f"sys/bus/pci/drivers/{driver}")
        tree.link(f"sys/class/accel/accel{n}", f"{real}/accel/accel{n}")
        tree.link(f"{real}/accel/accel{n}/device", real)
        tree.write(f"dev/accel/accel{n}")
    (npu,) = collect_accelerators(tree.probe_paths()).devices or []
    assert (npu.vendor, npu.kind, npu.pci_id, npu.driver) == ("amd", "npu", "1022:1502", "amdxdna")
    assert npu.device_node == "/dev/accel/accel0"
    assert npu.runtimes == ["onnxruntime:VitisAIExecutionProvider"]


@pytest.mark.unit
def test_usable_runtimes_needs_the_provider_or_the_runtime() -> None:
    """An ORT candidate is usable only when that provider is offered; a delegate only with TFLite itself."""
    runtimes = RuntimesInfo(
        onnxruntime=OnnxRuntimeInfo(installed=True, version="1.19.0", providers=["CPUExecutionProvider"]),
        others=[
            RuntimeInfo(name="tflite:libedgetpu", installed=True, found="library libedgetpu.so.1"),
            RuntimeInfo(name="tflite", installed=False, found=None),
            RuntimeInfo(name="hailort", installed=True, found="executable /usr/bin/hailortcli"),
        ],
    )
    assert usable_runtimes(["onnxruntime:OpenVINOExecutionProvider"], runtimes) == []
    assert usable_runtimes(["onnxruntime:CPUExecutionProvider"], runtimes) == [
        "onnxruntime:CPUExecutionProvider"
    ]
    assert usable_runtimes(["tflite:libedgetpu"], runtimes) == []
    assert usable_runtimes(["hailort"], runtimes) == ["hailort"]
