"""Read a model's input/output signature: ONNX through the ``onnx`` package, loaded on use.

Only the build imports this module; the agent never does (it must stay free of onnx and numpy).
TFLite models are accepted without reading them: their signature is optional and may be given in
the build spec instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgefleet.bundle.errors import BundleInputError, BundleUnavailableError
from edgefleet.bundle.manifest import TensorSpec

__all__ = ["OnnxSignature", "read_onnx_signature"]

# ONNX names two element types differently from everyone else.
_DTYPE_ALIASES = {"float": "float32", "double": "float64"}


class OnnxSignature:
    """Inputs, outputs and default-domain opset of an ONNX graph."""

    def __init__(self, inputs: list[TensorSpec], outputs: list[TensorSpec], opset: int | None) -> None:
        self.inputs = inputs
        self.outputs = outputs
        self.opset = opset


def read_onnx_signature(path: Path) -> OnnxSignature:
    """The graph inputs (initializers excluded) and outputs of the ONNX model at ``path``.

    External weight files are not loaded: only the graph is parsed.
    """
    try:
        import onnx
    except ImportError as exc:
        raise BundleUnavailableError(
            "reading an ONNX model needs the 'onnx' package: pip install 'edgefleet[runtime]'",
            code="bundle.onnx_missing",
        ) from exc
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise BundleInputError(
            f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})",
            code="bundle.model_unreadable",
            path=str(path),
        ) from exc
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [_tensor(onnx, v) for v in graph.input if v.name not in initializers]
    outputs = [_tensor(onnx, v) for v in graph.output]
    opset = next((o.version for o in model.opset_import if o.domain in {"", "ai.onnx"}), None)
    return OnnxSignature(inputs, outputs, int(opset) if opset else None)


def _tensor(onnx: Any, value_info: Any) -> TensorSpec:
    kind = value_info.type.WhichOneof("value")
    if kind != "tensor_type":
        return TensorSpec(name=value_info.name, dtype=str(kind or "unknown"), shape=None)
    tensor_type = value_info.type.tensor_type
    dtype_name = str(onnx.TensorProto.DataType.Name(tensor_type.elem_type)).lower()
    dtype_name = _DTYPE_ALIASES.get(dtype_name, dtype_name)
    shape: list[int | str | None] | None = None
    if tensor_type.HasField("shape"):
        shape = []
        for dim in tensor_type.shape.dim:
            which = dim.WhichOneof("value")
            if which == "dim_value":
                shape.append(int(dim.dim_value))
            elif which == "dim_param":
                shape.append(str(dim.dim_param))
            else:
                shape.append(None)
    return TensorSpec(name=value_info.name, dtype=dtype_name, shape=shape)
