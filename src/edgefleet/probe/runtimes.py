"""Inference runtimes installed here: ONNX Runtime and its execution providers, and vendor runtimes.

ONNX Runtime is imported only when it is installed (checked with ``find_spec`` first), so the
probe stays light on a device that has none. :func:`usable_runtimes` says which of the runtimes
an accelerator names (:mod:`edgefleet.probe.accelerator_ids`) can run here.
"""

from __future__ import annotations

from pydantic import Field

from edgefleet.probe.model import Record, Section
from edgefleet.probe.paths import ProbePaths
from edgefleet.probe.read import Unknowns, Unreadable

__all__ = ["OnnxRuntimeInfo", "RuntimeInfo", "RuntimesInfo", "collect_runtimes", "usable_runtimes"]


class OnnxRuntimeInfo(Record):
    """ONNX Runtime as installed for this Python."""

    installed: bool = Field(description="Whether the onnxruntime package (any flavour) is importable.")
    version: str | None = Field(description="Its version.")
    providers: list[str] = Field(description="Execution providers this build offers, in priority order.")


class RuntimeInfo(Record):
    """A vendor runtime and how it was found."""

    name: str = Field(description="hailort, rknn, openvino, tensorrt, tflite, or a tflite:<delegate>.")
    installed: bool
    found: str | None = Field(description="What showed it: a Python module, an executable or a library.")


class RuntimesInfo(Section):
    """Runtimes that can execute models here."""

    onnxruntime: OnnxRuntimeInfo | None = Field(description="ONNX Runtime and its providers.")
    others: list[RuntimeInfo] | None = Field(description="Vendor runtimes and TFLite delegates.")


# runtime name → (python modules, executables, shared libraries); any one of them shows it
_OTHERS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "tflite": (("ai_edge_litert", "tflite_runtime"), (), ()),
    "tflite:libedgetpu": ((), (), ("edgetpu",)),
    "tflite:teflon": ((), (), ("teflon",)),
    "tflite:ethos-u": ((), (), ("ethosu_delegate",)),
    "hailort": (("hailo_platform",), ("hailortcli",), ("hailort",)),
    "rknn": (("rknnlite", "rknn"), (), ("rknnrt",)),
    "openvino": (("openvino",), (), ()),
    "tensorrt": (("tensorrt",), ("trtexec",), ("nvinfer",)),
}


def _onnxruntime(paths: ProbePaths) -> OnnxRuntimeInfo:
    if not paths.find_module("onnxruntime"):
        return OnnxRuntimeInfo(installed=False, version=None, providers=[])
    try:
        ort = paths.import_module("onnxruntime")
        providers = [str(p) for p in ort.get_available_providers()]
        version = str(getattr(ort, "__version__", "")) or None
    except Exception as exc:
        raise Unreadable(f"onnxruntime is installed but failed to load: {type(exc).__name__}: {exc}") from exc
    return OnnxRuntimeInfo(installed=True, version=version, providers=providers)


def _others(paths: ProbePaths) -> list[RuntimeInfo]:
    out: list[RuntimeInfo] = []
    for name, (modules, tools, libraries) in _OTHERS.items():
        found = next((f"python module {m}" for m in modules if paths.find_module(m)), None)
        found = found or next((f"executable {p}" for t in tools if (p := paths.which(t))), None)
        found = found or next((f"library {p}" for lib in libraries if (p := paths.find_library(lib))), None)
        out.append(RuntimeInfo(name=name, installed=found is not None, found=found))
    return out


def usable_runtimes(candidates: list[str], runtimes: RuntimesInfo) -> list[str]:
    """Those of ``candidates`` that are installed: ORT providers by name, others by :data:`_OTHERS`."""
    ort = runtimes.onnxruntime
    installed = {r.name for r in runtimes.others or [] if r.installed}
    usable: list[str] = []
    for candidate in candidates:
        family, _, provider = candidate.partition(":")
        if family == "onnxruntime":
            if ort is not None and provider in ort.providers:
                usable.append(candidate)
        elif candidate in installed and (family != "tflite" or "tflite" in installed):
            usable.append(candidate)
    return usable


def collect_runtimes(paths: ProbePaths) -> RuntimesInfo:
    """Find the runtimes installed for this Python and on this system."""
    unknown = Unknowns()
    return RuntimesInfo(
        onnxruntime=unknown.attempt("onnxruntime", lambda: _onnxruntime(paths)),
        others=unknown.attempt("others", lambda: _others(paths)),
        unknown=dict(unknown),
    )
