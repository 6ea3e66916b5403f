"""Remote-write encoding (decoded with an independent protobuf parser), snappy, headers, retries."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import cramjam
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from prometheus_client import CollectorRegistry, Counter, Histogram

from edgefleet.errors import InvalidInputError
from edgefleet.telemetry.remote_write import (
    RemoteWriteError,
    RemoteWriter,
    TimeSeries,
    encode_write_request,
    push_registry,
    series_from_registry,
)

pytestmark = pytest.mark.unit


def _write_request_class() -> Any:
    """prometheus.WriteRequest built from a descriptor, to parse what the encoder wrote."""
    f = descriptor_pb2.FileDescriptorProto(name="ef_test_remote.proto", package="ef_test_prometheus")
    t = descriptor_pb2.FieldDescriptorProto
    msgs = {
        "Label": [("name", 1, t.TYPE_STRING, None), ("value", 2, t.TYPE_STRING, None)],
        "Sample": [("value", 1, t.TYPE_DOUBLE, None), ("timestamp", 2, t.TYPE_INT64, None)],
        "TimeSeries": [("labels", 1, t.TYPE_MESSAGE, "Label"), ("samples", 2, t.TYPE_MESSAGE, "Sample")],
        "WriteRequest": [("timeseries", 1, t.TYPE_MESSAGE, "TimeSeries")],
    }
    for name, fields in msgs.items():
        m = f.message_type.add(name=name)
        for fname, num, ftype, ref in fields:
            label = t.LABEL_REPEATED if ref else t.LABEL_OPTIONAL
            fd = m.field.add(name=fname, number=num, type=ftype, label=label)
            if ref:
                fd.type_name = f".ef_test_prometheus.{ref}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("ef_test_prometheus.WriteRequest"))


WriteRequest = _write_request_class()


def test_encoding_decodes_with_protobuf() -> None:
    body = encode_write_request(
        [
            TimeSeries({"__name__": "up", "job": "j", "a": "é"}, ((1.5, 1700000000123), (-2.0, -5))),
            TimeSeries({"__name__": "x", "empty": ""}, ()),
        ]
    )
    req = WriteRequest()
    req.ParseFromString(body)
    first, second = req.timeseries
    assert [(label.name, label.value) for label in first.labels] == [
        ("__name__", "up"),
        ("a", "é"),
        ("job", "j"),
    ]
    assert [(s.value, s.timestamp) for s in first.samples] == [(1.5, 1700000000123), (-2.0, -5)]
    assert [label.name for label in second.labels] == ["__name__"]


def test_bad_series_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="no __name__"):
        encode_write_request([TimeSeries({"job": "j"}, ((1.0, 1),))])
    with pytest.raises(InvalidInputError, match="label name"):
        encode_write_request([TimeSeries({"__name__": "a", "bad-name": "v"}, ((1.0, 1),))])
    with pytest.raises(InvalidInputError, match="url"):
        RemoteWriter("ftp://example/")


def test_registry_samples_become_series() -> None:
    reg = CollectorRegistry()
    Counter("ef_things", "things", ["kind"], registry=reg).labels(kind="a").inc(3)
    Histogram("ef_lat_seconds", "lat", buckets=(0.1, 1), registry=reg).observe(0.5)
    series = series_from_registry(reg, extra_labels={"device": "dev_1"}, timestamp_ms=42)
    by_name = {(s.labels["__name__"], s.labels.get("le", "")): s for s in series}
    assert by_name[("ef_things_total", "")].samples == ((3.0, 42),)
    assert by_name[("ef_things_total", "")].labels["device"] == "dev_1"
    assert by_name[("ef_lat_seconds_bucket", "1.0")].samples == ((1.0, 42),)
    assert not any(n.endswith("_created") for n, _ in by_name)


@contextmanager
def scripted_receiver(statuses: list[int]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP server answering the given statuses in turn; records each request."""
    seen: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append({"headers": dict(self.headers), "body": body})
            self.send_response(statuses[min(len(seen), len(statuses)) - 1])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/api/v1/write", seen
    finally:
        srv.shutdown()
        srv.server_close()


def test_headers_snappy_and_retry_on_5xx() -> None:
    reg = CollectorRegistry()
    Counter("ef_pushed", "p", registry=reg).inc()
    delays: list[float] = []
    with scripted_receiver([503, 500, 204]) as (url, seen):
        n = push_registry(url, reg, extra_labels={"device": "d"}, sleep=delays.append)
    assert n >= 1
    assert len(seen) == 3
    assert delays == [0.5, 1.0]
    h = seen[-1]["headers"]
    assert h["Content-Encoding"] == "snappy"
    assert h["Content-Type"] == "application/x-protobuf"
    assert h["X-Prometheus-Remote-Write-Version"] == "0.1.0"
    assert h["User-Agent"].startswith("edgefleet/")
    req = WriteRequest()
    req.ParseFromString(bytes(cramjam.snappy.decompress_raw(seen[-1]["body"])))
    names = {lab.value for ts in req.timeseries for lab in ts.labels if lab.name == "__name__"}
    assert "ef_pushed_total" in names


@pytest.mark.parametrize("status", [400, 401, 404, 429])
def test_4xx_is_never_retried(status: int) -> None:
    delays: list[float] = []
    with scripted_receiver([status, 204]) as (url, seen):
        writer = RemoteWriter(url, sleep=delays.append)
        with pytest.raises(RemoteWriteError, match=f"HTTP {status}") as err:
            writer.push([TimeSeries({"__name__": "a"}, ((1.0, 1),))])
    assert len(seen) == 1
    assert not delays
    assert err.value.code == "telemetry.remote_write_failed"


def test_gives_up_after_max_attempts_and_on_network_errors() -> None:
    delays: list[float] = []
    with scripted_receiver([502]) as (url, seen):
        writer = RemoteWriter(url, max_attempts=3, backoff=1, max_backoff=1.5, sleep=delays.append)
        with pytest.raises(RemoteWriteError, match="after 3 attempts: HTTP 502"):
            writer.push([TimeSeries({"__name__": "a"}, ((1.0, 1),))])
    assert len(seen) == 3
    assert delays == [1, 1.5]
    with scripted_receiver([204]) as (url, _):
        pass  # closed: connections are refused now
    with pytest.raises(RemoteWriteError, match="after 2 attempts"):
        RemoteWriter(url, max_attempts=2, sleep=delays.append).push(
            [TimeSeries({"__name__": "a"}, ((1.0, 1),))]
        )
    assert RemoteWriter(url).push([]) == 0
