"""Cut the regions a detector found out of a frame, for the next model in the chain."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["crop_region"]


def crop_region(image: npt.NDArray[np.uint8], region: dict[str, Any]) -> npt.NDArray[np.uint8] | None:
    """The region's pixels: a rectified quadrilateral for a ``polygon``, else the ``box``; ``None`` if empty.

    A polygon taller than 1.5x its width is turned upright (vertical text lines)."""
    if "polygon" in region:
        pts = np.asarray(region["polygon"], dtype=np.float32)
        width = int(max(np.linalg.norm(pts[0] - pts[1]), np.linalg.norm(pts[2] - pts[3])))
        height = int(max(np.linalg.norm(pts[0] - pts[3]), np.linalg.norm(pts[1] - pts[2])))
        if width < 1 or height < 1:
            return None
        dst = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
        matrix = cv2.getPerspectiveTransform(pts, dst)
        out = cv2.warpPerspective(
            np.ascontiguousarray(image),
            matrix,
            (width, height),
            borderMode=cv2.BORDER_REPLICATE,
            flags=cv2.INTER_CUBIC,
        )
        if height / width >= 1.5:
            out = np.rot90(out)
        return np.ascontiguousarray(out)
    x1, y1, x2, y2 = (round(v) for v in region["box"])
    x1, y1 = max(0, x1), max(0, y1)
    x2, y2 = min(image.shape[1], x2), min(image.shape[0], y2)
    if x2 <= x1 or y2 <= y1:
        return None
    return np.ascontiguousarray(image[y1:y2, x1:x2])
