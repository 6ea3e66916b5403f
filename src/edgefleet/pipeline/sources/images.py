"""Every image file in a folder, in name order; an unreadable file is a counted ``bad_input`` drop."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from edgefleet.pipeline.errors import SourceNotFoundError
from edgefleet.pipeline.sources.base import SourceContext
from edgefleet.pipeline.spec import ImageFolderSourceSpec

__all__ = ["ImageFolderSource"]

log = logging.getLogger(__name__)


class ImageFolderSource:
    def __init__(
        self, spec: ImageFolderSourceSpec, *, base_dir: Path, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = spec.name
        self.spec = spec
        self.folder = (base_dir / spec.path).resolve()
        self._monotonic = monotonic

    def open(self) -> None:
        if not self.folder.is_dir():
            raise SourceNotFoundError(
                f"source {self.name!r}: image folder {self.folder} does not exist",
                source=self.name,
                path=str(self.folder),
            )

    def close(self) -> None:
        """Nothing stays open between images."""

    def files(self) -> list[Path]:
        return sorted(p for p in self.folder.glob(self.spec.pattern) if p.is_file())

    def run(self, ctx: SourceContext) -> None:
        period = 1.0 / self.spec.fps if self.spec.fps else 0.0
        next_at = self._monotonic()
        ctx.up(True)
        while not ctx.stop.is_set():
            for index, path in enumerate(self.files()):
                if ctx.stop.is_set():
                    return
                if period:
                    wait = next_at - self._monotonic()
                    if wait > 0 and ctx.stop.wait(wait):
                        return
                    next_at += period
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is None:
                    ctx.drop("bad_input")
                    log.warning("source %s: %s is not a readable image; skipped", self.name, path)
                    continue
                ctx.emit(
                    np.ascontiguousarray(image[..., ::-1], dtype=np.uint8), index * period if period else None
                )
            if not self.spec.loop:
                return
