"""Push Prometheus samples with the Remote-Write 1.0 protocol (for devices nobody can scrape).

The body is a ``prometheus.WriteRequest`` protobuf, snappy block-compressed. The messages are small
enough to encode by hand (no generated code, no protobuf runtime on the device)::

    message WriteRequest { repeated TimeSeries timeseries = 1; }
    message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
    message Label        { string name = 1; string value = 2; }
    message Sample       { double value = 1; int64 timestamp = 2; }   // milliseconds

Headers per the spec: ``Content-Encoding: snappy``, ``Content-Type: application/x-protobuf``,
``X-Prometheus-Remote-Write-Version: 0.1.0`` and a ``User-Agent``. A 5xx answer or a connection
error is retried with exponential backoff (capped); any other 4xx is final (the data would be
refused again). Labels inside a series are sorted by name, ``__name__`` included.

    push_registry("http://prom:9090/api/v1/write", registry, extra_labels={"device": "dev_1"})
"""

from __future__ import annotations

import struct
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgefleet import __version__
from edgefleet.errors import InvalidInputError, OperationFailedError
from edgefleet.telemetry.logs import get_logger

if TYPE_CHECKING:  # only its type: the device agent pushes without prometheus_client loaded
    from prometheus_client import CollectorRegistry

__all__ = [
    "RemoteWriteError",
    "RemoteWriter",
    "TimeSeries",
    "encode_write_request",
    "push_registry",
    "series_from_registry",
]

log = get_logger(__name__)
PROTOCOL_VERSION = "0.1.0"
_LABEL_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


class RemoteWriteError(OperationFailedError):
    """The receiver refused the samples (4xx), or kept failing (5xx / network) past the retries."""

    default_code = "telemetry.remote_write_failed"


@dataclass(frozen=True)
class TimeSeries:
    """One series (labels, ``__name__`` included) and its samples as ``(value, timestamp_ms)``."""

    labels: Mapping[str, str]
    samples: tuple[tuple[float, int], ...] = field(default=())


# ---- protobuf wire format ----------------------------------------------------------------------


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int64 negatives: two's complement over ten bytes
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _label(name: str, value: str) -> bytes:
    return _field_bytes(1, name.encode()) + _field_bytes(2, value.encode())


def _sample(value: float, timestamp_ms: int) -> bytes:
    return _varint(1 << 3 | 1) + struct.pack("<d", value) + _varint(2 << 3 | 0) + _varint(timestamp_ms)


def encode_write_request(series: Iterable[TimeSeries]) -> bytes:
    """The uncompressed ``WriteRequest`` bytes; labels sorted, names checked, no empty values."""
    out = bytearray()
    for i, ts in enumerate(series):
        if "__name__" not in ts.labels:
            raise InvalidInputError(f"series {i}: the labels have no __name__", field=f"series[{i}].labels")
        body = bytearray()
        for name in sorted(ts.labels):
            if not name or name[0].isdigit() or not set(name) <= _LABEL_NAME_OK:
                raise InvalidInputError(
                    f"series {i}: label name {name!r} must match [a-zA-Z_][a-zA-Z0-9_]*",
                    field=f"series[{i}].labels",
                )
            if ts.labels[name] != "":  # an empty value means: no such label
                body += _field_bytes(1, _label(name, ts.labels[name]))
        for value, ts_ms in ts.samples:
            body += _field_bytes(2, _sample(float(value), int(ts_ms)))
        out += _field_bytes(1, bytes(body))
    return bytes(out)


def compress(data: bytes) -> bytes:
    """Snappy block format (not the framed format), as the spec requires."""
    import cramjam

    return bytes(cramjam.snappy.compress_raw(data))


# ---- from a prometheus_client registry -----------------------------------------------------------


def series_from_registry(
    registry: CollectorRegistry,
    *,
    extra_labels: Mapping[str, str] | None = None,
    timestamp_ms: int | None = None,
) -> list[TimeSeries]:
    """Every sample of ``registry`` as one series each, stamped ``timestamp_ms`` (now by default).

    ``extra_labels`` (``device``, ``instance``...) are added to every series, as a scrape would add
    ``job`` and ``instance``. ``_created`` samples are left out, as an OpenMetrics scrape leaves them.
    NaN values are sent (Prometheus stores them); a sample's own timestamp wins over ``timestamp_ms``.
    """
    now = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    extra = dict(extra_labels or {})
    out: list[TimeSeries] = []
    for metric in registry.collect():
        for s in metric.samples:
            if s.name.endswith("_created"):
                continue
            labels = {**s.labels, **extra, "__name__": s.name}
            ts = int(float(s.timestamp) * 1000) if s.timestamp is not None else now
            out.append(TimeSeries(labels, ((float(s.value), ts),)))
    return out


# ---- HTTP -----------------------------------------------------------------------------------------

Post = Callable[[str, bytes, dict[str, str], float], int]


def _urllib_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST with the standard library; returns the HTTP status (raises OSError on network errors)."""
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - caller's URL
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - http(s) URL checked below
            return int(r.status)
    except urllib.error.HTTPError as e:
        e.read()
        return int(e.code)


class RemoteWriter:
    """Sends samples to one remote-write URL; retries 5xx and network errors, never other 4xx."""

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        max_attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        post: Post = _urllib_post,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidInputError(f"remote-write url {url!r}: must be http:// or https://", field="url")
        if max_attempts < 1:
            raise InvalidInputError("max_attempts: must be at least 1", field="max_attempts")
        self.url = url
        self.headers = {
            "Content-Encoding": "snappy",
            "Content-Type": "application/x-protobuf",
            "X-Prometheus-Remote-Write-Version": PROTOCOL_VERSION,
            "User-Agent": f"edgefleet/{__version__}",
            **(headers or {}),
        }
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._post = post
        self._sleep = sleep

    def push(self, series: Iterable[TimeSeries]) -> int:
        """Send ``series`` in one request; returns how many series were sent (0: nothing to send)."""
        items = list(series)
        if not items:
            return 0
        body = compress(encode_write_request(items))
        last = ""
        for attempt in range(self.max_attempts):
            try:
                status = self._post(self.url, body, dict(self.headers), self.timeout)
            except OSError as e:  # connection refused, reset, timeout: worth another try
                last = f"{type(e).__name__}: {e}"
            else:
                if 200 <= status < 300:
                    return len(items)
                if status < 500:
                    raise RemoteWriteError(
                        f"remote write to {self.url} refused with HTTP {status} (not retried)",
                        status=status,
                    )
                last = f"HTTP {status}"
            if attempt + 1 < self.max_attempts:
                delay = min(self.max_backoff, self.backoff * 2**attempt)
                log.warning(
                    "remote write failed, retrying",
                    extra={"url": self.url, "error": last, "attempt": attempt + 1, "delay_s": delay},
                )
                self._sleep(delay)
        raise RemoteWriteError(
            f"remote write to {self.url} failed after {self.max_attempts} attempts: {last}",
            attempts=self.max_attempts,
        )

    def push_registry(
        self, registry: CollectorRegistry, *, extra_labels: Mapping[str, str] | None = None
    ) -> int:
        return self.push(series_from_registry(registry, extra_labels=extra_labels))


def push_registry(
    url: str,
    registry: CollectorRegistry,
    *,
    extra_labels: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    max_attempts: int = 5,
    post: Post = _urllib_post,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Push every sample of ``registry`` to ``url`` now; returns the number of series sent."""
    writer = RemoteWriter(
        url, headers=headers, timeout=timeout, max_attempts=max_attempts, post=post, sleep=sleep
    )
    return writer.push_registry(registry, extra_labels=extra_labels)
