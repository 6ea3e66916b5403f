"""Test media made on the spot: synthetic video files, text images, an MJPEG-over-HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont


def synthetic_frame(i: int, width: int = 320, height: int = 240) -> np.ndarray:
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 0] = (i * 8) % 256
    x = (i * 5) % (width - 20)
    img[50:100, x : x + 20] = 255
    return img


def write_video(path: Path, frames: int, *, fps: int = 30, width: int = 320, height: int = 240) -> Path:
    """Encode ``frames`` synthetic RGB frames with PyAV (MPEG-4 Part 2, in the container ``path`` names)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(synthetic_frame(i, width, height), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def text_image(lines: list[str], *, size: int = 40, width: int = 800) -> Image.Image:
    """Black text on white, one line per entry, in Pillow's bundled font."""
    font = ImageFont.load_default(size=size)
    img = Image.new("RGB", (width, 40 + len(lines) * int(size * 2)), "white")
    draw = ImageDraw.Draw(img)
    for k, line in enumerate(lines):
        x = 24.0
        for word in line.split():  # word by word, with a clear gap: the font's space is narrow
            draw.text((x, 20 + k * int(size * 2)), word, fill="black", font=font)
            x += draw.textlength(word, font=font) + size * 1.0
    return img


class MjpegServer:
    """Serves ``multipart/x-mixed-replace`` JPEG frames; closes each connection after ``per_connection``
    frames (a stream that drops), and accepts the next connection as normal."""

    def __init__(self, per_connection: int, fps: float = 50.0, bad_every: int = 0) -> None:
        self.per_connection = per_connection
        self.period = 1.0 / fps
        self.bad_every = bad_every
        self.connections = 0
        self.sent = 0
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:
                server.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                for _ in range(server.per_connection):
                    if server._stop.is_set():
                        return
                    i = server.sent
                    ok, jpeg = cv2.imencode(".jpg", synthetic_frame(i)[..., ::-1])
                    assert ok
                    data = jpeg.tobytes()
                    if server.bad_every and i % server.bad_every == server.bad_every - 1:
                        data = data[:200] + b"\x00" * 50  # truncated garbage: undecodable
                    try:
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                            + str(len(data)).encode()
                            + b"\r\n\r\n"
                            + data
                            + b"\r\n"
                        )
                        self.wfile.flush()
                    except OSError:
                        return
                    server.sent += 1
                    server._stop.wait(server.period)
                # returning closes the connection: the stream drops mid-run

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stream.mjpg"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @contextmanager
    def running(self) -> Iterator[MjpegServer]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self.httpd.shutdown()
            self.httpd.server_close()
            self._thread.join(5)
