"""HTTP push: clients POST encoded images (JPEG, PNG...) to ``http://host:port/<path>``.

The reply is ``202`` with ``{"source", "accepted": true}``; an image that does not decode gets
``400`` and is counted as a ``bad_input`` drop. Under the ``every`` policy the reply waits until
the pipeline has room (backpressure reaches the client).
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

from edgefleet.pipeline.errors import SourceUnavailableError
from edgefleet.pipeline.sources.base import SourceContext
from edgefleet.pipeline.spec import HttpPushSourceSpec

__all__ = ["HttpPushSource"]

log = logging.getLogger(__name__)


class HttpPushSource:
    def __init__(self, spec: HttpPushSourceSpec) -> None:
        self.name = spec.name
        self.spec = spec
        self._server: ThreadingHTTPServer | None = None
        self._ctx: SourceContext | None = None
        self._ready = threading.Event()

    @property
    def port(self) -> int:
        """The bound port (useful with ``port = 0``)."""
        if self._server is None:
            raise SourceUnavailableError(f"source {self.name!r} is not open", source=self.name)
        return int(self._server.server_address[1])

    def open(self) -> None:
        source = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
                log.debug("push %s: %s", source.name, format % args)

            def do_POST(self) -> None:
                status, body = source._handle(self)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        try:
            self._server = ThreadingHTTPServer((self.spec.host, self.spec.port), Handler)
        except OSError as exc:
            raise SourceUnavailableError(
                f"source {self.name!r}: cannot listen on {self.spec.host}:{self.spec.port}: {exc}",
                source=self.name,
            ) from exc
        self._server.daemon_threads = True
        self._server.timeout = 0.2

    def _handle(self, request: BaseHTTPRequestHandler) -> tuple[int, dict[str, object]]:
        if request.path.split("?", 1)[0] != self.spec.path:
            return 404, {"error": f"POST images to {self.spec.path}"}
        length = int(request.headers.get("Content-Length") or 0)
        if length <= 0 or length > self.spec.max_body_bytes:
            return 413 if length > 0 else 411, {"error": f"body must be 1..{self.spec.max_body_bytes} bytes"}
        payload = request.rfile.read(length)
        ctx = self._ctx
        if ctx is None or ctx.stop.is_set():
            return 503, {"error": "pipeline is not running"}
        image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            ctx.drop("bad_input")
            return 400, {"error": "body is not a decodable image"}
        ctx.emit(np.ascontiguousarray(image[..., ::-1], dtype=np.uint8), None)
        return 202, {"source": self.name, "accepted": True}

    def run(self, ctx: SourceContext) -> None:
        if self._server is None:
            self.open()
        server = self._server
        assert server is not None  # noqa: S101 - set by open() just above
        self._ctx = ctx
        ctx.up(True)
        try:
            while not ctx.stop.is_set():
                server.handle_request()
        finally:
            ctx.up(False)

    def close(self) -> None:
        if self._server is not None:
            self._server.server_close()
            self._server = None
