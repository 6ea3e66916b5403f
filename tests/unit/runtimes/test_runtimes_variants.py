"""Bundles with several model files: the device picks the variant its hardware runs best."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgefleet.bundle.errors import BundleError
from edgefleet.bundle.manifest import BundleManifest, parse_manifest
from edgefleet.bundle.variants import select_variant
from edgefleet.probe.inventory import collect
from edgefleet.testing import fake_devices
from edgefleet.testing.fake_tree import FakeTree
from tests.unit.bundle.bundle_helpers import manifest_for

pytestmark = pytest.mark.unit

_FILES = {"model.onnx": b"onnx", "model_edgetpu.tflite": b"tpu", "model.trt.onnx": b"trt"}


def _manifest(variants: list[dict[str, str]] | None = None) -> BundleManifest:
    body = manifest_for(_FILES, model="model.onnx")
    if variants is not None:
        body["variants"] = variants
    return BundleManifest.model_validate(body)


_VARIANTS = [
    {"path": "model_edgetpu.tflite", "format": "tflite", "target": "edgetpu"},
    {"path": "model.trt.onnx", "format": "onnx", "target": "tensorrt"},
]


def _coral(root: Path) -> FakeTree:
    """A Raspberry Pi 5 with a Coral USB Accelerator (firmware loaded: 18d1:9302) on port 1-1."""
    tree = fake_devices.raspberry_pi5_hailo8l(root)
    usb = "sys/devices/platform/axi/1000120000.pcie/1f00200000.usb/xhci-hcd.0/usb1/1-1"
    tree.files(usb, {"idVendor": "18d1\n", "idProduct": "9302\n", "busnum": "1\n", "devnum": "3\n"})
    tree.link("sys/bus/usb/devices/1-1", usb)
    return tree


def test_old_bundles_stay_valid_and_keep_their_bytes() -> None:
    old = _manifest()
    assert old.variants == []
    assert b"variants" not in old.canonical_bytes()
    new = _manifest(_VARIANTS)
    assert parse_manifest(new.canonical_bytes()) == new
    assert json.loads(new.canonical_bytes())["schema_version"] == 1


def test_a_variant_must_be_among_the_files() -> None:
    body = manifest_for(_FILES, model="model.onnx")
    body["variants"] = [{"path": "missing.tflite", "format": "tflite", "target": "edgetpu"}]
    with pytest.raises(BundleError, match=r"variants\.0\.path"):
        parse_manifest(json.dumps(body).encode())


def test_coral_picks_the_edgetpu_variant(tmp_path: Path) -> None:
    choice = select_variant(_manifest(_VARIANTS), collect(_coral(tmp_path).probe_paths()))
    assert (choice.path, choice.target) == ("model_edgetpu.tflite", "edgetpu")


def test_jetson_picks_the_tensorrt_variant(tmp_path: Path) -> None:
    choice = select_variant(
        _manifest(_VARIANTS), collect(fake_devices.jetson_orin_nano(tmp_path).probe_paths())
    )
    assert (choice.path, choice.target) == ("model.trt.onnx", "tensorrt")


def test_machines_without_a_matching_accelerator_run_the_model_file(tmp_path: Path) -> None:
    hailo_only = collect(fake_devices.raspberry_pi5_hailo8l(tmp_path / "pi").probe_paths())
    assert select_variant(_manifest(_VARIANTS), hailo_only).path == "model.onnx"
    here = collect()
    choice = select_variant(_manifest(_VARIANTS), here)
    assert (choice.path, choice.target) == ("model.onnx", "cpu")
    assert select_variant(_manifest(), here).reason == "only file"
