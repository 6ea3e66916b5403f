"""Built-in post-processing: classification top-k, YOLO decode + NMS, segmentation argmax,
DB text detection and CTC text recognition.

A post-processor turns one model call's outputs (a batch) into one JSON-ready ``dict`` per image.
Detectors put their boxes under ``"regions"`` (each with ``box`` ``[x1, y1, x2, y2]`` in source
pixels, and for text a 4-point ``polygon``); a later model in the chain runs on those regions.
Keys starting with ``_`` carry arrays for annotation and never reach a sink.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from edgefleet.pipeline.inference import Tensors
from edgefleet.pipeline.spec import ClassifyPost, CtcPost, DbPost, SegmentPost, YoloPost
from edgefleet.pipeline.transforms import Geometry

__all__ = [
    "Classify",
    "CtcDecode",
    "DbTextDetect",
    "Postprocessor",
    "Segment",
    "YoloDetect",
    "nms",
    "softmax",
]

Result = dict[str, Any]
FloatArray = npt.NDArray[np.float32]


class Postprocessor(Protocol):
    def __call__(self, outputs: Tensors, geoms: Sequence[Geometry]) -> list[Result]: ...


def _pick(outputs: Tensors, name: str | None) -> FloatArray:
    if name is None:
        return np.asarray(next(iter(outputs.values())), dtype=np.float32)
    return np.asarray(outputs[name], dtype=np.float32)


def softmax(x: FloatArray, axis: int = -1) -> FloatArray:
    """Numerically stable softmax along ``axis``."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return np.asarray(e / e.sum(axis=axis, keepdims=True), dtype=np.float32)


def _label(labels: Sequence[str] | None, index: int) -> str:
    return labels[index] if labels is not None and 0 <= index < len(labels) else str(index)


class Classify:
    """Top-k classes per image, with labels and probabilities."""

    def __init__(self, spec: ClassifyPost, labels: Sequence[str] | None) -> None:
        self.spec = spec
        self.labels = labels

    def __call__(self, outputs: Tensors, geoms: Sequence[Geometry]) -> list[Result]:
        logits = _pick(outputs, self.spec.output).reshape(len(geoms), -1)
        apply = self.spec.softmax
        if apply is None:
            apply = bool(
                logits.min() < 0 or logits.max() > 1 or not np.allclose(logits.sum(axis=1), 1, atol=1e-3)
            )
        probs = softmax(logits) if apply else logits
        k = min(self.spec.top_k, probs.shape[1])
        top = np.argsort(-probs, axis=1)[:, :k]
        return [
            {
                "top": [
                    {"index": int(i), "label": _label(self.labels, int(i)), "score": round(float(p[i]), 6)}
                    for i in row
                ]
            }
            for row, p in zip(top, probs, strict=True)
        ]


def nms(boxes: FloatArray, scores: FloatArray, iou_threshold: float, limit: int) -> list[int]:
    """Greedy non-maximum suppression; indices of kept boxes, best first."""
    order = np.argsort(-scores)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.maximum(0, x2 - x1) * np.maximum(0, y2 - y1)
    keep: list[int] = []
    while order.size and len(keep) < limit:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return keep


class YoloDetect:
    """YOLO decode: centre boxes to corners, confidence filter, class-aware NMS, source coordinates."""

    def __init__(self, spec: YoloPost, labels: Sequence[str] | None) -> None:
        self.spec = spec
        self.labels = labels

    def __call__(self, outputs: Tensors, geoms: Sequence[Geometry]) -> list[Result]:
        raw = _pick(outputs, self.spec.output)
        results: list[Result] = []
        for pred, geom in zip(raw, geoms, strict=True):
            if self.spec.format == "yolov8":
                rows = pred.T  # [A, 4 + C]
                cls_scores = rows[:, 4:]
            else:
                rows = pred  # [A, 5 + C]
                cls_scores = rows[:, 5:] * rows[:, 4:5]
            classes = cls_scores.argmax(axis=1)
            scores = cls_scores[np.arange(len(rows)), classes]
            mask = scores >= self.spec.conf_threshold
            rows, classes, scores = rows[mask], classes[mask], scores[mask]
            cx, cy, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
            boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
            # class-aware NMS in one pass: offset each class's boxes far apart
            offset = classes[:, None].astype(np.float32) * 1e5
            keep = nms(boxes + offset, scores, self.spec.iou_threshold, self.spec.max_detections)
            src = geom.to_source(boxes[keep]) if keep else np.zeros((0, 4), np.float32)
            results.append(
                {
                    "regions": [
                        {
                            "box": [round(float(v), 1) for v in b],
                            "index": int(classes[k]),
                            "label": _label(self.labels, int(classes[k])),
                            "score": round(float(scores[k]), 4),
                        }
                        for b, k in zip(src, keep, strict=True)
                    ]
                }
            )
        return results


class Segment:
    """Per-pixel argmax; each present class with its share of the image."""

    def __init__(self, spec: SegmentPost, labels: Sequence[str] | None) -> None:
        self.spec = spec
        self.labels = labels

    def __call__(self, outputs: Tensors, geoms: Sequence[Geometry]) -> list[Result]:
        raw = _pick(outputs, self.spec.output)
        results: list[Result] = []
        for pred, geom in zip(raw, geoms, strict=True):
            classes = pred.argmax(axis=0) if pred.ndim == 3 else pred.astype(np.int64)
            y0, x0 = int(geom.pad_y), int(geom.pad_x)
            visible = classes[y0 : y0 + geom.height, x0 : x0 + geom.width]
            counts = np.bincount(visible.ravel())
            total = max(1, int(visible.size))
            present = [
                {"index": int(i), "label": _label(self.labels, int(i)), "ratio": round(int(c) / total, 5)}
                for i, c in enumerate(counts)
                if c
            ]
            results.append({"classes": present, "_mask": visible.astype(np.uint8)})
        return results


def _order_points(pts: FloatArray) -> FloatArray:
    """Four points clockwise from the top-left."""
    pts = pts[np.argsort(pts[:, 0])]
    left, right = pts[:2], pts[2:]
    tl, bl = left[np.argsort(left[:, 1])]
    tr, br = right[np.argsort(right[:, 1])]
    return np.array([tl, tr, br, bl], dtype=np.float32)


class DbTextDetect:
    """DB post-processing: binarise the probability map, a rotated box per contour, score, unclip."""

    def __init__(self, spec: DbPost) -> None:
        self.spec = spec
        self._kernel = np.ones((2, 2), np.uint8)

    def __call__(self, outputs: Tensors, geoms: Sequence[Geometry]) -> list[Result]:
        maps = _pick(outputs, self.spec.output)
        return [
            {"regions": self._boxes(m.reshape(m.shape[-2:]), g)} for m, g in zip(maps, geoms, strict=True)
        ]

    def _boxes(self, prob: FloatArray, geom: Geometry) -> list[Result]:
        s = self.spec
        bitmap = cv2.dilate((prob > s.threshold).astype(np.uint8), self._kernel)
        contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        regions: list[Result] = []
        for contour in contours[: s.max_candidates]:
            (cx, cy), (w, h), angle = cv2.minAreaRect(contour)
            if min(w, h) < s.min_size:
                continue
            score = self._score(prob, np.asarray(contour, dtype=np.int32))
            if score < s.box_threshold:
                continue
            # unclip: grow every side by area * ratio / perimeter (what a polygon offset does to a rectangle)
            d = (w * h) * s.unclip_ratio / max(2 * (w + h), 1e-6)
            w2, h2 = w + 2 * d, h + 2 * d
            if min(w2, h2) < s.min_size + 2:
                continue
            pts = _order_points(cv2.boxPoints(((cx, cy), (w2, h2), angle)).astype(np.float32))
            src = geom.points_to_source(pts)
            box = [
                float(src[:, 0].min()),
                float(src[:, 1].min()),
                float(src[:, 0].max()),
                float(src[:, 1].max()),
            ]
            regions.append(
                {
                    "box": [round(v, 1) for v in box],
                    "polygon": [[round(float(x), 1), round(float(y), 1)] for x, y in src],
                    "score": round(score, 4),
                }
            )
        # reading order: top to bottom, then left to right within a line
        regions.sort(key=lambda r: (round(r["box"][1] / 10), r["box"][0]))
        return regions

    @staticmethod
    def _score(prob: FloatArray, contour: npt.NDArray[np.int32]) -> float:
        x, y, w, h = cv2.boundingRect(contour)
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [contour.reshape(-1, 2) - [x, y]], 1)
        return float(cv2.mean(prob[y : y + h, x : x + w], mask)[0])


class CtcDecode:
    """CTC greedy decoding: best class per step, repeats merged, blanks removed."""

    def __init__(self, spec: CtcPost, dictionary: Sequence[str]) -> None:
        self.spec = spec
        chars = list(dictionary)
        if spec.append_space:
            chars.append(" ")
        self.blank = 0 if spec.blank_first else len(chars)
        self.chars = ["", *chars] if spec.blank_first else [*chars, ""]

    def __call__(self, outputs: Tensors, geoms: Sequence[Geometry]) -> list[Result]:
        del geoms  # text has no coordinates to map back
        probs = _pick(outputs, self.spec.output)
        index = probs.argmax(axis=2)
        best = probs.max(axis=2)
        results: list[Result] = []
        for idx, p in zip(index, best, strict=True):
            keep = np.ones(len(idx), dtype=bool)
            keep[1:] = idx[1:] != idx[:-1]
            keep &= idx != self.blank
            text = "".join(self.chars[i] if i < len(self.chars) else "" for i in idx[keep])
            score = float(p[keep].mean()) if keep.any() else 0.0
            if score < self.spec.min_score:
                text = ""
            results.append({"text": text, "score": round(score, 4)})
        return results
