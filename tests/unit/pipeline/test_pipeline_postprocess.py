"""Post-processing built-ins on hand-made model outputs."""

from __future__ import annotations

import numpy as np
import pytest

from edgefleet.pipeline.postprocess import Classify, CtcDecode, DbTextDetect, Segment, YoloDetect, nms
from edgefleet.pipeline.spec import ClassifyPost, CtcPost, DbPost, SegmentPost, YoloPost
from edgefleet.pipeline.transforms import Geometry

pytestmark = pytest.mark.unit

IDENTITY = Geometry(1.0, 1.0, 0, 0, 100, 100, 100, 100)


def test_pipeline_classify_top_k_with_labels_and_softmax() -> None:
    post = Classify(ClassifyPost(kind="classify", top_k=2), ["cat", "dog", "cow"])
    out = post({"logits": np.array([[1.0, 3.0, 2.0]], np.float32)}, [IDENTITY])
    top = out[0]["top"]
    assert [t["label"] for t in top] == ["dog", "cow"]
    assert top[0]["score"] == pytest.approx(np.exp(3) / np.exp([1, 3, 2]).sum(), rel=1e-4)
    probs = post({"p": np.array([[0.1, 0.2, 0.7]], np.float32)}, [IDENTITY])
    assert probs[0]["top"][0] == {"index": 2, "label": "cow", "score": pytest.approx(0.7)}


def test_pipeline_nms_suppresses_overlaps() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    assert nms(boxes, np.array([0.9, 0.8, 0.7], np.float32), 0.5, 10) == [0, 2]


def test_pipeline_yolov8_decode_filters_and_maps_to_source() -> None:
    # [N, 4 + C, A]: three anchors, two classes; anchor 1 overlaps anchor 0 with a lower score
    pred = np.zeros((1, 6, 3), np.float32)
    pred[0, :4, 0] = [50, 50, 20, 20]
    pred[0, 4, 0] = 0.9
    pred[0, :4, 1] = [51, 51, 20, 20]
    pred[0, 4, 1] = 0.8
    pred[0, :4, 2] = [20, 20, 10, 10]
    pred[0, 5, 2] = 0.6
    geom = Geometry(0.5, 0.5, 0, 10, 200, 200, 100, 100)
    out = YoloDetect(YoloPost(kind="yolo"), ["person", "car"])({"o": pred}, [geom])
    regions = out[0]["regions"]
    assert [r["label"] for r in regions] == ["person", "car"]
    assert regions[0]["box"] == [80.0, 60.0, 120.0, 100.0]
    assert regions[0]["score"] == pytest.approx(0.9)


def test_pipeline_yolov5_uses_objectness_times_class() -> None:
    pred = np.array([[[10, 10, 4, 4, 0.5, 0.9, 0.1], [50, 50, 4, 4, 0.1, 0.9, 0.1]]], np.float32)
    out = YoloDetect(YoloPost(kind="yolo", format="yolov5", conf_threshold=0.3), None)(
        {"o": pred}, [IDENTITY]
    )
    assert len(out[0]["regions"]) == 1
    assert out[0]["regions"][0]["score"] == pytest.approx(0.45)
    assert out[0]["regions"][0]["label"] == "0"


def test_pipeline_segment_argmax_reports_class_shares_inside_the_image() -> None:
    logits = np.zeros((1, 2, 4, 4), np.float32)
    logits[0, 1, :, :2] = 1.0  # class 1 on the left half
    out = Segment(SegmentPost(kind="segment"), ["bg", "road"])(
        {"o": logits}, [Geometry(1, 1, 0, 0, 4, 4, 4, 4)]
    )
    assert out[0]["classes"] == [
        {"index": 0, "label": "bg", "ratio": 0.5},
        {"index": 1, "label": "road", "ratio": 0.5},
    ]
    assert out[0]["_mask"].shape == (4, 4)


def test_pipeline_ctc_greedy_merges_repeats_and_drops_blanks() -> None:
    chars = ["a", "b", "c"]  # indices 1..3; blank 0; space 4
    steps = [1, 1, 0, 1, 2, 2, 4, 3, 0]
    probs = np.full((1, len(steps), 5), 0.01, np.float32)
    for t, k in enumerate(steps):
        probs[0, t, k] = 0.9
    out = CtcDecode(CtcPost(kind="ctc", dictionary="x"), chars)({"o": probs}, [IDENTITY])
    assert out[0]["text"] == "aab c"
    assert out[0]["score"] == pytest.approx(0.9)


def test_pipeline_db_finds_a_text_box_and_unclips_it() -> None:
    prob = np.zeros((1, 1, 64, 128), np.float32)
    prob[0, 0, 20:30, 10:90] = 0.95
    geom = Geometry(0.5, 0.5, 0, 0, 256, 128, 128, 64)
    out = DbTextDetect(DbPost(kind="db"))({"o": prob}, [geom])
    (region,) = out[0]["regions"]
    x1, y1, x2, y2 = region["box"]
    assert x1 < 20
    assert x2 > 178  # grown past the 80-pixel-wide core (x2 in source: 90 / 0.5)
    assert y1 < 40
    assert y2 > 58
    assert region["score"] > 0.8
    assert len(region["polygon"]) == 4
