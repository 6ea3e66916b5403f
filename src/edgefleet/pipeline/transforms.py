"""Vectorised frame transforms: colour, resize/letterbox, normalise, layout, dtype and batching.

Frames enter as RGB ``uint8`` arrays of shape (H, W, 3). :class:`Preprocessor` turns a list of
them into one model input tensor and remembers, per image, how to map model coordinates back to
frame coordinates (:class:`Geometry`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edgefleet.pipeline.spec import PreprocessSpec, ResizeSpec

__all__ = ["Geometry", "Preprocessor", "convert_color", "letterbox", "resize", "to_layout"]

_DTYPES: dict[str, type[np.generic]] = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8}


@dataclass(frozen=True)
class Geometry:
    """How a model-input image maps to its source image: ``src = (model - pad) / scale``."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    src_width: int
    src_height: int
    width: int
    """Width of the image inside the (possibly padded) tensor."""
    height: int

    def to_source(self, boxes: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Map ``[..., (x1, y1, x2, y2)]`` boxes from model input to source pixels, clipped."""
        out = boxes.astype(np.float32, copy=True)
        out[..., 0::2] = np.clip((out[..., 0::2] - self.pad_x) / self.scale_x, 0, self.src_width)
        out[..., 1::2] = np.clip((out[..., 1::2] - self.pad_y) / self.scale_y, 0, self.src_height)
        return out

    def points_to_source(self, points: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Map ``[..., (x, y)]`` points from model input to source pixels, clipped."""
        out = points.astype(np.float32, copy=True)
        out[..., 0] = np.clip((out[..., 0] - self.pad_x) / self.scale_x, 0, self.src_width - 1)
        out[..., 1] = np.clip((out[..., 1] - self.pad_y) / self.scale_y, 0, self.src_height - 1)
        return out


def convert_color(image: npt.NDArray[np.uint8], color: str) -> npt.NDArray[np.uint8]:
    """RGB ``image`` to ``rgb`` (unchanged), ``bgr`` or ``gray`` (H, W, 1)."""
    if color == "rgb":
        return image
    if color == "bgr":
        return image[..., ::-1]
    gray = np.asarray(cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY), dtype=np.uint8)
    return gray[..., None]


def resize(image: npt.NDArray[np.uint8], width: int, height: int) -> npt.NDArray[np.uint8]:
    """Resize to exactly ``width`` x ``height`` (area filter when shrinking, linear when growing)."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    interp = cv2.INTER_AREA if width * height < w * h else cv2.INTER_LINEAR
    out = np.asarray(cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=interp), np.uint8)
    return out[..., None] if out.ndim == 2 else out


def letterbox(
    image: npt.NDArray[np.uint8], width: int, height: int, pad_value: int = 114
) -> tuple[npt.NDArray[np.uint8], Geometry]:
    """Fit inside ``width`` x ``height`` keeping the aspect ratio, centred on a ``pad_value`` canvas."""
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = np.full((height, width, image.shape[2]), pad_value, dtype=np.uint8)
    px, py = (width - nw) // 2, (height - nh) // 2
    canvas[py : py + nh, px : px + nw] = resize(image, nw, nh)
    return canvas, Geometry(nw / w, nh / h, px, py, w, h, nw, nh)


def _sized(image: npt.NDArray[np.uint8], spec: ResizeSpec) -> tuple[npt.NDArray[np.uint8], Geometry]:
    h, w = image.shape[:2]
    m = spec.multiple_of
    if spec.mode == "letterbox":
        return letterbox(image, spec.width, spec.height, spec.pad_value)
    if spec.mode == "stretch":
        nw, nh = spec.width, spec.height
    elif spec.mode == "fit":
        scale = min(spec.width / w, spec.height / h)
        nw = max(m, round(w * scale / m) * m)
        nh = max(m, round(h * scale / m) * m)
    else:  # height
        nh = spec.height
        nw = min(spec.width, max(m, math.ceil(w * nh / h / m) * m))
    return resize(image, nw, nh), Geometry(nw / w, nh / h, 0, 0, w, h, nw, nh)


def to_layout(batch: npt.NDArray[np.generic], layout: str) -> npt.NDArray[np.generic]:
    """``nhwc`` batch to ``layout`` (``nchw`` or ``nhwc``), contiguous."""
    if layout == "nchw":
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
    return np.ascontiguousarray(batch)


class Preprocessor:
    """Applies one model's :class:`PreprocessSpec` to a list of RGB images, as one batch."""

    def __init__(self, spec: PreprocessSpec) -> None:
        self.spec = spec
        channels = 1 if spec.color == "gray" else 3
        self._mean = np.asarray(spec.mean * (channels if len(spec.mean) == 1 else 1), dtype=np.float32)
        self._std = np.asarray(spec.std * (channels if len(spec.std) == 1 else 1), dtype=np.float32)
        self._dtype = _DTYPES[spec.dtype]
        # x * scale - mean) / std  ==  x * a + b, one fused multiply-add per pixel
        self._a = (spec.scale / self._std).astype(np.float32)
        self._b = (-self._mean / self._std).astype(np.float32)

    def __call__(self, images: list[npt.NDArray[np.uint8]]) -> tuple[npt.NDArray[np.generic], list[Geometry]]:
        """The batch tensor and each image's geometry."""
        sized: list[npt.NDArray[np.uint8]] = []
        geoms: list[Geometry] = []
        for image in images:
            img = convert_color(image, self.spec.color)
            if self.spec.resize is not None:
                img, geom = _sized(img, self.spec.resize)
            else:
                h, w = img.shape[:2]
                geom = Geometry(1.0, 1.0, 0, 0, w, h, w, h)
            sized.append(img)
            geoms.append(geom)
        height = max(i.shape[0] for i in sized)
        width = max(i.shape[1] for i in sized)
        channels = sized[0].shape[2]
        if self._dtype is np.uint8:
            batch_u8 = np.zeros((len(sized), height, width, channels), dtype=np.uint8)
            for k, img in enumerate(sized):
                batch_u8[k, : img.shape[0], : img.shape[1]] = img
            return to_layout(batch_u8, self.spec.layout), geoms
        batch = np.zeros((len(sized), height, width, channels), dtype=np.float32)
        for k, img in enumerate(sized):
            view = batch[k, : img.shape[0], : img.shape[1]]
            np.multiply(img, self._a, out=view, casting="unsafe")
            view += self._b
        out = to_layout(batch, self.spec.layout)
        return (out if self._dtype is np.float32 else out.astype(self._dtype)), geoms
