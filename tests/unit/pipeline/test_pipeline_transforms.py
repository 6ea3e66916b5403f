"""Transforms: colour, resize/letterbox geometry, normalise, layout, dtype, batching with padding."""

from __future__ import annotations

import numpy as np
import pytest

from edgefleet.pipeline.spec import PreprocessSpec, ResizeSpec
from edgefleet.pipeline.transforms import Preprocessor, convert_color, letterbox

pytestmark = pytest.mark.unit


def _image(h: int, w: int) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = 200  # red
    img[..., 2] = 10
    return img


def test_pipeline_color_conversion_swaps_or_collapses_channels() -> None:
    img = _image(4, 6)
    assert convert_color(img, "bgr")[0, 0].tolist() == [10, 0, 200]
    gray = convert_color(img, "gray")
    assert gray.shape == (4, 6, 1)
    assert abs(int(gray[0, 0, 0]) - round(0.299 * 200 + 0.114 * 10)) <= 1


def test_pipeline_letterbox_keeps_aspect_and_maps_boxes_back() -> None:
    canvas, geom = letterbox(_image(100, 200), 64, 64, pad_value=114)
    assert canvas.shape == (64, 64, 3)
    assert (geom.width, geom.height, geom.pad_x, geom.pad_y) == (64, 32, 0, 16)
    assert canvas[0, 0].tolist() == [114, 114, 114]
    assert canvas[32, 32].tolist() == [200, 0, 10]
    back = geom.to_source(np.array([[0, 16, 64, 48]], np.float32))
    np.testing.assert_allclose(back, [[0, 0, 200, 100]], atol=0.5)


def test_pipeline_normalise_layout_and_dtype() -> None:
    spec = PreprocessSpec(
        resize=ResizeSpec(width=8, height=4),
        mean=[0.5, 0.5, 0.5],
        std=[0.25, 0.25, 0.25],
        layout="nchw",
    )
    tensor, geoms = Preprocessor(spec)([_image(16, 32), _image(4, 8)])
    assert tensor.shape == (2, 3, 4, 8)
    assert tensor.dtype == np.float32
    np.testing.assert_allclose(tensor[:, 0], (200 / 255 - 0.5) / 0.25, rtol=1e-5)
    np.testing.assert_allclose(tensor[:, 1], (0 - 0.5) / 0.25, rtol=1e-5)
    assert geoms[0].scale_x == pytest.approx(0.25)
    nhwc, _ = Preprocessor(PreprocessSpec(layout="nhwc", dtype="uint8", color="bgr"))([_image(2, 3)])
    assert nhwc.shape == (1, 2, 3, 3)
    assert nhwc.dtype == np.uint8
    assert nhwc[0, 0, 0].tolist() == [10, 0, 200]
    half, _ = Preprocessor(PreprocessSpec(dtype="float16"))([_image(2, 3)])
    assert half.dtype == np.float16


def test_pipeline_batch_of_different_widths_is_padded_on_the_right() -> None:
    spec = PreprocessSpec(
        resize=ResizeSpec(width=100, height=10, mode="height"), mean=[0.0], std=[1.0], scale=1.0
    )
    tensor, geoms = Preprocessor(spec)([_image(5, 10), _image(5, 30)])
    assert tensor.shape == (2, 3, 10, 60)
    assert [g.width for g in geoms] == [20, 60]
    assert float(tensor[0, 0, 0, 25]) == 0.0  # padding
    assert float(tensor[0, 0, 0, 5]) == 200.0


def test_pipeline_fit_rounds_sides_to_a_multiple() -> None:
    spec = PreprocessSpec(resize=ResizeSpec(width=960, height=960, mode="fit", multiple_of=32))
    tensor, geoms = Preprocessor(spec)([_image(200, 800)])
    assert tensor.shape[2] % 32 == 0
    assert tensor.shape[3] % 32 == 0
    assert tensor.shape[3] == 960
    assert geoms[0].src_width == 800
