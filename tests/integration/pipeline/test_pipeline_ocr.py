"""Two chained models: PP-OCRv4 text detection (DB) → recognition (CTC) on the detected regions."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from edgefleet.pipeline.runner import Pipeline
from edgefleet.pipeline.specfile import load_spec

from .media import text_image

pytestmark = pytest.mark.integration

PAGES = [
    (["EDGE FLEET CAMERA", "stream model 2048"], 40),
    (["PIPELINE RESULTS", "north gate 17"], 40),
    (["invoice total 9310", "DEVICE ONLINE"], 40),
    (["Serial AB12 ready", "Batch 0042 passed", "Dock door seven"], 28),
]
"""Rendered words (text, font size in pixels); the test requires at least 80% read back exactly."""

SPEC = """
[pipeline]
name = "ocr"
policy = "every"

[[sources]]
kind = "images"
name = "pages"
path = "pages"

[[models]]
name = "det"
path = "pkg:rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"
[models.preprocess]
color = "bgr"
resize = { width = 960, height = 960, mode = "fit", multiple_of = 32 }
mean = [0.5, 0.5, 0.5]
std = [0.5, 0.5, 0.5]
[models.postprocess]
kind = "db"

[[models]]
name = "rec"
path = "pkg:rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx"
on = "det"
[models.preprocess]
color = "bgr"
resize = { width = 480, height = 48, mode = "height" }
mean = [0.5, 0.5, 0.5]
std = [0.5, 0.5, 0.5]
[models.postprocess]
kind = "ctc"

[[sinks]]
kind = "jsonl"
path = "ocr.jsonl"

[[sinks]]
kind = "video"
path = "annotated.mkv"
fps = 5
"""


def test_pipeline_ocr_reads_back_rendered_words(tmp_path: Path) -> None:
    """Detection boxes feed recognition; ≥ 80% of the rendered words come back exactly (100% measured)."""
    pytest.importorskip("rapidocr_onnxruntime")
    pages = tmp_path / "pages"
    pages.mkdir()
    for k, (lines, size) in enumerate(PAGES):
        text_image(lines, size=size).save(pages / f"{k:02d}.png")
    (pages / "99-broken.png").write_bytes(b"not an image")
    (tmp_path / "ocr.toml").write_text(SPEC)
    loaded = load_spec(tmp_path / "ocr.toml")
    summary = Pipeline(loaded.spec, base_dir=loaded.base_dir).run()
    assert summary.frames_out == len(PAGES)
    assert summary.dropped == {"bad_input": 1}

    messages = [json.loads(line) for line in (tmp_path / "ocr.jsonl").read_text().splitlines()]
    expected = [w for lines, _ in PAGES for w in " ".join(lines).split()]
    read: list[str] = []
    for message in messages:
        for region in message["results"]["det"]["regions"]:
            assert len(region["polygon"]) == 4
            read.extend(region["rec"]["text"].split())
    hits = sum(1 for w in expected if w in read)
    accuracy = hits / len(expected)
    print(f"OCR word accuracy: {hits}/{len(expected)} = {accuracy:.0%}; read: {read}")  # noqa: T201 - shown with -s
    assert accuracy >= 0.8, (accuracy, read)

    with av.open(str(tmp_path / "annotated.mkv")) as video:
        frames = [f.to_ndarray(format="rgb24") for f in video.decode(video=0)]
    assert len(frames) == len(PAGES)
    first = frames[0]
    assert first.shape[1] == 800
    green = (first[..., 1] > 180) & (first[..., 0] < 90) & (first[..., 2] < 90)
    assert green.sum() > 100  # the detected boxes are drawn
