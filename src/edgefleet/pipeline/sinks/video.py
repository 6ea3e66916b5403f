"""Annotated video file sink: every result's frame with its boxes and labels drawn, encoded by
FFmpeg through PyAV (codec and container from the spec, size from the first frame)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgefleet.pipeline.errors import PipelineFailedError
from edgefleet.pipeline.frame import Item
from edgefleet.pipeline.sinks.base import Message
from edgefleet.pipeline.sinks.preview import annotate
from edgefleet.pipeline.spec import VideoSinkSpec

__all__ = ["VideoFileSink"]


class VideoFileSink:
    def __init__(self, spec: VideoSinkSpec, path: Path) -> None:
        self.name = f"video:{path.name}"
        self.spec = spec
        self.path = path
        self._container: Any = None
        self._stream: Any = None
        self._size: tuple[int, int] | None = None

    def open(self) -> None:
        """The file is created with the first frame, when its size is known."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PipelineFailedError(
                f"cannot create {self.path.parent}: {exc}", code="pipeline.sink_unavailable"
            ) from exc

    def _start(self, width: int, height: int) -> None:
        import av

        try:
            self._container = av.open(str(self.path), "w")
            self._stream = self._container.add_stream(self.spec.codec, rate=self.spec.fps)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise PipelineFailedError(
                f"cannot write video {self.path} with codec {self.spec.codec!r}: {exc}",
                code="pipeline.sink_unavailable",
            ) from exc
        # even sizes: 4:2:0 chroma needs them
        self._size = (width - width % 2, height - height % 2)
        self._stream.width, self._stream.height = self._size
        self._stream.pix_fmt = "yuv420p"

    def write(self, message: Message, item: Item) -> None:
        import av

        del message
        image = item.frame.image
        if self._container is None:
            self._start(image.shape[1], image.shape[0])
        assert self._size is not None  # noqa: S101 - set by _start
        bgr = annotate(image, item.results)
        w, h = self._size
        rgb = np.ascontiguousarray(bgr[:h, :w, ::-1])
        if rgb.shape[:2] != (h, w):  # a source whose size changed mid-stream: pad into the first size
            canvas = np.zeros((h, w, 3), np.uint8)
            canvas[: rgb.shape[0], : rgb.shape[1]] = rgb
            rgb = canvas
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
            self._container.mux(packet)

    def close(self) -> None:
        if self._container is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None
