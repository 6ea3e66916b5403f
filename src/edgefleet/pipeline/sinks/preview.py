"""MJPEG preview over HTTP: the latest annotated frame as ``multipart/x-mixed-replace``."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edgefleet.pipeline.errors import PipelineFailedError
from edgefleet.pipeline.frame import Item
from edgefleet.pipeline.sinks.base import Message
from edgefleet.pipeline.spec import MjpegSinkSpec

__all__ = ["MjpegPreviewSink", "annotate"]

log = logging.getLogger(__name__)
_BOUNDARY = "edgefleetframe"


def annotate(image: npt.NDArray[np.uint8], results: dict[str, Any]) -> npt.NDArray[np.uint8]:
    """A BGR copy of RGB ``image`` with every region's box and label or text drawn on it."""
    out = np.ascontiguousarray(image[..., ::-1])
    y = 20
    for model, result in results.items():
        for region in result.get("regions", []):
            x1, y1, x2, y2 = (int(v) for v in region["box"])
            cv2.rectangle(out, (x1, y1), (x2, y2), (0, 255, 0), 2)
            text = region.get("label") or next(
                (v.get("text") for v in region.values() if isinstance(v, dict) and "text" in v), ""
            )
            if text:
                cv2.putText(
                    out, str(text), (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 0), 1
                )
        if result.get("top"):
            best = result["top"][0]
            cv2.putText(
                out,
                f"{model}: {best['label']} {best['score']:.2f}",
                (8, y),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.6,
                (0, 255, 255),
                2,
            )
            y += 22
    return out


class MjpegPreviewSink:
    def __init__(self, spec: MjpegSinkSpec) -> None:
        self.name = f"mjpeg:{spec.host}:{spec.port}"
        self.spec = spec
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._frame: bytes | None = None
        self._cond = threading.Condition()
        self._closed = False

    @property
    def port(self) -> int:
        if self._server is None:
            raise PipelineFailedError("MJPEG preview is not open", code="pipeline.sink_unavailable")
        return int(self._server.server_address[1])

    def open(self) -> None:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
                log.debug("preview: %s", format % args)

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
                self.end_headers()
                sent: list[bytes | None] = [None]
                while True:
                    with sink._cond:
                        sink._cond.wait_for(lambda: sink._closed or sink._frame is not sent[0], timeout=1.0)
                        if sink._closed:
                            return
                        jpeg = sink._frame
                    if jpeg is None or jpeg is sent[0]:
                        continue
                    sent[0] = jpeg
                    try:
                        self.wfile.write(
                            f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                            f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                        )
                        self.wfile.write(jpeg + b"\r\n")
                    except OSError:
                        return

        try:
            self._server = ThreadingHTTPServer((self.spec.host, self.spec.port), Handler)
        except OSError as exc:
            raise PipelineFailedError(
                f"MJPEG preview cannot listen on {self.spec.host}:{self.spec.port}: {exc}",
                code="pipeline.sink_unavailable",
            ) from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="pipeline-preview", daemon=True
        )
        self._thread.start()

    def write(self, message: Message, item: Item) -> None:
        del message
        ok, jpeg = cv2.imencode(
            ".jpg", annotate(item.frame.image, item.results), [cv2.IMWRITE_JPEG_QUALITY, self.spec.quality]
        )
        if ok:
            with self._cond:
                self._frame = jpeg.tobytes()
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
