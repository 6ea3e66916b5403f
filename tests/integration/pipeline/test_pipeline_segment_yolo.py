"""Segmentation and YOLO decoding end to end, through tiny ONNX graphs built with onnx.helper.

The segmenter's logits are the image's own channels (Identity), so the argmax class of a pixel is
its dominant colour; the detector reshapes a 3x2x4 input into a YOLOv8 [1, 4+2, 4] output, so the
test controls every anchor through the pixels of a frame.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from edgefleet.pipeline.runner import Pipeline
from edgefleet.pipeline.specfile import parse_spec

pytestmark = pytest.mark.integration


def _identity_model(path: Path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, None, None])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 3, None, None])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["logits"])], "seg", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def _reshape_model(path: Path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2, 4])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 6, 4])
    shape = helper.make_tensor("shape", TensorProto.INT64, [3], [1, 6, 4])
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["out"])], "yolo", [x], [y], [shape]
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_pipeline_segmentation_argmax_with_a_labels_file(tmp_path: Path) -> None:
    _identity_model(tmp_path / "seg.onnx")
    (tmp_path / "labels.txt").write_text("red\ngreen\nblue\n")
    (tmp_path / "frames").mkdir()
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, :20] = (255, 0, 0)  # a quarter red
    img[:, 20:] = (0, 0, 255)  # three quarters blue
    Image.fromarray(img).save(tmp_path / "frames" / "0.png")
    spec = parse_spec(
        """
[pipeline]
policy = "every"
[[sources]]
kind = "images"
name = "cam"
path = "frames"
[[models]]
name = "seg"
path = "seg.onnx"
[models.preprocess]
resize = { width = 64, height = 64, mode = "letterbox", pad_value = 0 }
[models.postprocess]
kind = "segment"
labels_file = "labels.txt"
[[sinks]]
kind = "jsonl"
path = "seg.jsonl"
"""
    )
    assert Pipeline(spec, base_dir=tmp_path).run().frames_out == 1
    (message,) = [json.loads(x) for x in (tmp_path / "seg.jsonl").read_text().splitlines()]
    classes = {c["label"]: c["ratio"] for c in message["results"]["seg"]["classes"]}
    assert set(classes) == {"red", "blue"}  # the letterbox padding is not counted
    assert classes["red"] == pytest.approx(0.25, abs=0.03)
    assert classes["blue"] == pytest.approx(0.75, abs=0.03)


def test_pipeline_yolo_decode_and_nms_through_a_real_model_call(tmp_path: Path) -> None:
    _reshape_model(tmp_path / "det.onnx")
    # the 3x2x4 input, flattened, is the [6, 4] output: rows cx, cy, w, h, score(person), score(car)
    out = np.zeros((6, 4), np.float32)
    out[:, 0] = [1.0, 1.0, 2.0, 2.0, 0.9, 0.0]  # a person box at (0, 0)-(2, 2)
    out[:, 1] = [1.1, 1.1, 2.0, 2.0, 0.8, 0.0]  # overlapping, lower score: suppressed by NMS
    out[:, 2] = [3.0, 1.0, 2.0, 2.0, 0.0, 0.7]  # a car
    out[:, 3] = [3.0, 1.0, 2.0, 2.0, 0.1, 0.1]  # below the threshold
    chw = out.reshape(3, 2, 4)
    (tmp_path / "frames").mkdir()
    image = np.round(chw.transpose(1, 2, 0) * 10).astype(np.uint8)  # the model sees pixel / 10
    Image.fromarray(image).save(tmp_path / "frames" / "0.png")
    spec = parse_spec(
        """
[pipeline]
policy = "every"
[[sources]]
kind = "images"
name = "cam"
path = "frames"
[[models]]
name = "det"
path = "det.onnx"
[models.preprocess]
scale = 0.1
[models.postprocess]
kind = "yolo"
labels = ["person", "car"]
conf_threshold = 0.5
[[sinks]]
kind = "jsonl"
path = "det.jsonl"
"""
    )
    assert Pipeline(spec, base_dir=tmp_path).run().frames_out == 1
    (message,) = [json.loads(x) for x in (tmp_path / "det.jsonl").read_text().splitlines()]
    regions = message["results"]["det"]["regions"]
    assert [(r["label"], r["score"]) for r in regions] == [("person", 0.9), ("car", 0.7)]
    assert regions[0]["box"] == [0.0, 0.0, 2.0, 2.0]
    assert regions[1]["box"] == [2.0, 0.0, 4.0, 2.0]
