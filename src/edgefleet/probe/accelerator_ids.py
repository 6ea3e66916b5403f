"""The table of accelerators edgefleet recognises, and the runtimes that can drive each.

Detection is table-driven: PCI and USB ids, DRM/accel kernel driver names and device-tree
``compatible`` strings each map to a :class:`Known` entry. Adding a device is one row here.

Runtime names: ``onnxruntime:<ExecutionProvider>`` for ONNX Runtime execution providers,
``tflite:<delegate>`` for TensorFlow Lite / LiteRT delegates, ``hailort`` and ``rknn`` for the
vendors' own runtimes (they have no ONNX Runtime provider).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DEVICE_TREE", "DRIVERS", "JETSON_SOCS", "PCI_CLASS", "PCI_IDS", "USB_IDS", "Known"]

ORT_TENSORRT = "onnxruntime:TensorrtExecutionProvider"
ORT_CUDA = "onnxruntime:CUDAExecutionProvider"
ORT_OPENVINO = "onnxruntime:OpenVINOExecutionProvider"
ORT_VITISAI = "onnxruntime:VitisAIExecutionProvider"
ORT_MIGRAPHX = "onnxruntime:MIGraphXExecutionProvider"
ORT_QNN = "onnxruntime:QNNExecutionProvider"
NVIDIA_RUNTIMES = (ORT_TENSORRT, ORT_CUDA)


@dataclass(frozen=True)
class Known:
    """What a matched id means: the kind of device, its vendor and model, and who can run models on it."""

    kind: Literal["gpu", "npu", "tpu"]
    vendor: str
    model: str
    runtimes: tuple[str, ...]


def _intel_npu(gen: str) -> Known:
    return Known("npu", "intel", f"Intel NPU ({gen})", (ORT_OPENVINO,))


def _amd_npu(gen: str) -> Known:
    return Known("npu", "amd", f"AMD XDNA NPU ({gen})", (ORT_VITISAI,))


def _hailo(model: str) -> Known:
    return Known("npu", "hailo", model, ("hailort",))


# (vendor, device) → device, lower-case hex without 0x
PCI_IDS: dict[tuple[str, str], Known] = {
    ("8086", "7d1d"): _intel_npu("Meteor Lake"),
    ("8086", "ad1d"): _intel_npu("Arrow Lake"),
    ("8086", "643e"): _intel_npu("Lunar Lake"),
    ("8086", "b03e"): _intel_npu("Panther Lake"),
    ("8086", "fd3e"): _intel_npu("Wildcat Lake"),
    ("8086", "d71d"): _intel_npu("Nova Lake"),
    ("1022", "1502"): _amd_npu("NPU1, Phoenix / Hawk Point"),
    ("1022", "17f0"): _amd_npu("NPU4/5/6, Strix / Krackan"),
    ("1022", "17f1"): _amd_npu("17f1"),
    ("1022", "17f2"): _amd_npu("17f2"),
    ("1022", "17f3"): _amd_npu("17f3"),
    ("1022", "1b0a"): _amd_npu("1b0a"),
    ("1022", "1b0b"): _amd_npu("1b0b"),
    ("1022", "1b0c"): _amd_npu("1b0c"),
    ("1e60", "2864"): _hailo("Hailo-8/8L"),
    ("1e60", "45c4"): _hailo("Hailo-10H"),
    ("1e60", "43a2"): _hailo("Hailo-15L"),
    ("1e60", "26a2"): _hailo("Hailo (26a2)"),
    ("1ac1", "089a"): Known("tpu", "google", "Coral Edge TPU (PCIe/M.2)", ("tflite:libedgetpu",)),
}

# vendor → GPU, for PCI display controllers (class 0x03xxxx) of that vendor
PCI_CLASS: dict[str, Known] = {
    "10de": Known("gpu", "nvidia", "NVIDIA GPU", NVIDIA_RUNTIMES),
    "8086": Known("gpu", "intel", "Intel GPU", (ORT_OPENVINO,)),
    "1002": Known("gpu", "amd", "AMD GPU", (ORT_MIGRAPHX,)),
}

USB_IDS: dict[tuple[str, str], Known] = {
    ("1a6e", "089a"): Known("tpu", "google", "Coral USB Accelerator", ("tflite:libedgetpu",)),
    ("18d1", "9302"): Known("tpu", "google", "Coral USB Accelerator", ("tflite:libedgetpu",)),
}
USB_NEEDS_FIRMWARE = {("1a6e", "089a")}  # enumerates as 18d1:9302 once libedgetpu loads its firmware

# kernel driver of a /dev/accel, /dev/dri/renderD, /dev/hailo or /dev/apex node → device
DRIVERS: dict[str, Known] = {
    "ivpu": _intel_npu("ivpu"),
    "intel_vpu": _intel_npu("ivpu"),
    "amdxdna": _amd_npu("amdxdna"),
    "rocket": Known("npu", "rockchip", "Rockchip NPU (rocket)", ("tflite:teflon",)),
    "rknpu": Known("npu", "rockchip", "Rockchip NPU (rknpu)", ("rknn",)),
    "ethosu": Known("npu", "arm", "Arm Ethos-U", ("tflite:ethos-u",)),
    "habanalabs": Known("npu", "habana", "Habana Gaudi", ()),
    "qaic": Known("npu", "qualcomm", "Qualcomm Cloud AI 100", ()),
    "hailo": _hailo("Hailo"),
    "hailo_pci": _hailo("Hailo"),
    "hailo1x": _hailo("Hailo"),
    "apex": Known("tpu", "google", "Coral Edge TPU (PCIe/M.2)", ("tflite:libedgetpu",)),
    "nvidia": Known("gpu", "nvidia", "NVIDIA GPU", NVIDIA_RUNTIMES),
    "i915": Known("gpu", "intel", "Intel GPU", (ORT_OPENVINO,)),
    "xe": Known("gpu", "intel", "Intel GPU", (ORT_OPENVINO,)),
    "amdgpu": Known("gpu", "amd", "AMD GPU", (ORT_MIGRAPHX,)),
    "msm": Known("gpu", "qualcomm", "Qualcomm Adreno", ()),
    "panfrost": Known("gpu", "arm", "Arm Mali (panfrost)", ()),
    "panthor": Known("gpu", "arm", "Arm Mali (panthor)", ()),
    "v3d": Known("gpu", "broadcom", "Broadcom VideoCore (v3d)", ()),
}

# device-tree compatible of an SoC node → device (for NPUs whose driver is not bound)
DEVICE_TREE: dict[str, Known] = {
    "rockchip,rk3588-rknpu": DRIVERS["rknpu"],
    "rockchip,rk3588-rknn-core": DRIVERS["rocket"],
}

# device-tree root compatible → Jetson family
JETSON_SOCS: dict[str, str] = {
    "nvidia,tegra210": "Jetson Nano / TX1 (Tegra X1)",
    "nvidia,tegra186": "Jetson TX2 (Tegra X2)",
    "nvidia,tegra194": "Jetson Xavier (Tegra194)",
    "nvidia,tegra234": "Jetson Orin (Tegra234)",
    "nvidia,tegra264": "Jetson Thor (Tegra264)",
}
