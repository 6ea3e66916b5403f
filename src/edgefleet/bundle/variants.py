"""Which of a bundle's model files this device runs: the variant its hardware runs best.

A bundle's ``model`` runs everywhere (CPU); ``variants`` are files of the same model built for an
accelerator (``target``). A variant is chosen when the probe found an accelerator that the target's
runtime drives, installed runtimes first; otherwise the ``model`` file runs on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from edgefleet.bundle.manifest import BundleManifest
from edgefleet.probe.inventory import Inventory

__all__ = ["TARGET_RUNTIMES", "VariantChoice", "select_variant"]

TARGET_RUNTIMES: Final[dict[str, tuple[str, ...]]] = {
    "tensorrt": ("onnxruntime:TensorrtExecutionProvider",),
    "cuda": ("onnxruntime:CUDAExecutionProvider",),
    "edgetpu": ("tflite:libedgetpu",),
    "hailort": ("hailort",),
    "rknn": ("rknn",),
    "teflon": ("tflite:teflon",),
    "vx": ("tflite:vx",),
    "ethos-u": ("tflite:ethos-u",),
    "qnn": ("onnxruntime:QNNExecutionProvider",),
    "openvino": ("onnxruntime:OpenVINOExecutionProvider",),
}
"""Accelerator targets, best first, and the probe's runtime ids that drive each."""


@dataclass(frozen=True)
class VariantChoice:
    """The model file to run and why."""

    path: str
    format: str
    target: str
    reason: str


def select_variant(manifest: BundleManifest, inventory: Inventory) -> VariantChoice:
    """The file of ``manifest`` that ``inventory``'s hardware runs best (``model`` when no variant fits)."""
    found: set[str] = set()
    usable: set[str] = set()
    devices = inventory.accelerators.devices if inventory.accelerators else None
    for device in devices or ():
        found.update(device.runtimes)
        usable.update(device.usable_runtimes)
    ranked: list[tuple[int, int, VariantChoice]] = []
    for variant in manifest.variants:
        runtimes = TARGET_RUNTIMES.get(variant.target, ())
        order = list(TARGET_RUNTIMES).index(variant.target) if runtimes else len(TARGET_RUNTIMES)
        if usable.intersection(runtimes):
            score, why = 2, "installed"
        elif found.intersection(runtimes):
            score, why = 1, "present (runtime not installed yet)"
        else:
            continue
        ranked.append(
            (
                -score,
                order,
                VariantChoice(
                    variant.path,
                    variant.format,
                    variant.target,
                    f"{variant.target} variant: accelerator found, runtime {why}",
                ),
            )
        )
    if ranked:
        ranked.sort(key=lambda item: (item[0], item[1]))
        return ranked[0][2]
    reason = "no accelerator for any variant; the model file on the CPU" if manifest.variants else "only file"
    return VariantChoice(manifest.model.path, manifest.model.format, "cpu", reason)
