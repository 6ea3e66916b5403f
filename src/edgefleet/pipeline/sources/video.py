"""Video files and network streams (RTSP, HTTP, MJPEG over HTTP) decoded by FFmpeg through PyAV.

The source's thread is the decoder's thread: it opens the container, demuxes and decodes, and
closes the container before every reconnect, so a flapping stream leaks neither threads nor file
descriptors. Network errors and ends of stream are retried with exponential backoff; an
undecodable packet is counted as a ``decode_error`` drop and skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgefleet.pipeline.errors import SourceNotFoundError, SourceUnavailableError
from edgefleet.pipeline.sources.base import Backoff, SourceContext
from edgefleet.pipeline.spec import VideoSourceSpec

__all__ = ["VideoSource", "is_network_url"]

log = logging.getLogger(__name__)

_NETWORK = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "tcp://", "udp://", "srt://")


def is_network_url(url: str) -> bool:
    return url.lower().startswith(_NETWORK)


class VideoSource:
    """Frames of one video file or stream, optionally paced at its own frame rate."""

    def __init__(
        self,
        spec: VideoSourceSpec,
        *,
        base_dir: Path,
        realtime: bool,
        monotonic: Callable[[], float] = time.monotonic,
        open_container: Callable[..., Any] | None = None,
    ) -> None:
        self.name = spec.name
        self.spec = spec
        self.network = is_network_url(spec.url)
        self.location = spec.url if self.network else str((base_dir / spec.url).resolve())
        self.realtime = realtime
        self._monotonic = monotonic
        self._open = open_container
        self.opened = 0
        """Containers opened so far (one more per reconnect)."""
        self._emitted = 0

    def open(self) -> None:
        if not self.network and not Path(self.location).is_file():
            raise SourceNotFoundError(
                f"source {self.name!r}: video file {self.location} does not exist",
                source=self.name,
                path=self.location,
            )

    def close(self) -> None:
        """Containers are closed by :meth:`run` itself, in its own thread."""

    def _container(self) -> Any:
        import av

        opener = self._open or av.open
        options = dict(self.spec.options)
        if self.network:
            # FFmpeg's own socket timeout (microseconds) bounds every blocking read
            options.setdefault("rw_timeout", str(int(self.spec.timeout_s * 1_000_000)))
        return opener(
            self.location,
            format=self.spec.format,
            options=options,
            timeout=(self.spec.timeout_s, self.spec.timeout_s) if self.network else None,
        )

    def run(self, ctx: SourceContext) -> None:
        import av

        r = self.spec.reconnect
        backoff = Backoff(r.initial_s, r.max_s, r.factor, r.max_attempts)
        first = True
        while not ctx.stop.is_set():
            if not first:
                ctx.reconnected()
            first = False
            try:
                container = self._container()
            except (av.FFmpegError, OSError) as exc:
                if not self.network:
                    raise SourceUnavailableError(
                        f"source {self.name!r}: cannot open {self.location}: {exc}", source=self.name
                    ) from exc
                ctx.up(False)
                delay = backoff.next_delay()
                log.warning(
                    "source %s: cannot open %s (%s); retry in %.1fs",
                    self.name,
                    self.location,
                    str(exc),
                    delay,
                )
                if backoff.exhausted():
                    raise SourceUnavailableError(
                        f"source {self.name!r}: {self.location} unreachable "
                        f"after {backoff.failures} attempts",
                        source=self.name,
                    ) from exc
                ctx.stop.wait(delay)
                continue
            self.opened += 1
            self._emitted = 0
            failed = False
            try:
                self._decode(container, ctx)
            except (av.FFmpegError, OSError) as exc:
                failed = True
                # a string, not the exception: its traceback would keep the decoder (and its threads) alive
                log.warning("source %s: stream error after %d frames: %s", self.name, self._emitted, str(exc))
            finally:
                container.close()
                del container
                ctx.up(False)
            if self._emitted > 0:
                backoff.reset()
            if not self.network and not self.spec.loop and not failed:
                return
            if ctx.stop.is_set():
                return
            if self.network:
                delay = backoff.next_delay()
                log.info("source %s: stream ended; reconnecting in %.1fs", self.name, delay)
                ctx.stop.wait(delay)

    def _decode(self, container: Any, ctx: SourceContext) -> None:
        """Decode until the end or ``stop``, counting frames in ``self._emitted``."""
        import av

        stream = container.streams.video[0]
        ctx.up(True)
        start: float | None = None
        pts0: float | None = None
        for packet in container.demux(stream):
            if ctx.stop.is_set():
                break
            try:
                decoded = packet.decode()
            except av.InvalidDataError as exc:
                ctx.drop("decode_error")
                log.warning("source %s: undecodable packet skipped: %s", self.name, str(exc))
                continue
            for frame in decoded:
                pts = float(frame.time) if frame.time is not None else None
                if self.realtime and pts is not None:
                    now = self._monotonic()
                    if start is None or pts0 is None:
                        start, pts0 = now, pts
                    wait = start + (pts - pts0) - now
                    if wait > 0 and ctx.stop.wait(wait):
                        return
                ctx.emit(frame.to_ndarray(format="rgb24"), pts)
                self._emitted += 1
