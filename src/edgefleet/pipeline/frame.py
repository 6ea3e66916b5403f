"""A decoded frame and the times that follow it through the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Frame", "Item"]


@dataclass
class Frame:
    """One RGB ``uint8`` image (H, W, 3) from a source, stamped when it was captured."""

    source: str
    index: int
    """Sequence number within its source, from 0; gaps mean dropped frames."""
    image: npt.NDArray[np.uint8]
    captured: float
    """Monotonic capture time (``time.monotonic()`` when the source produced it)."""
    wall: float
    """Wall-clock capture time (Unix seconds), for messages."""
    pts: float | None = None
    """Presentation time in the stream, seconds, when the source has one."""


@dataclass
class Item:
    """A frame on its way through the stages, with the results gathered so far."""

    frame: Frame
    results: dict[str, Any] = field(default_factory=dict)
