"""Build and run the inference server: REST (uvicorn + httptools) and gRPC over one data plane.

The stable programmatic API::

    from edgefleet.serving import ServeSettings, build_server

    server = build_server("model.onnx", ServeSettings(http_port=0, grpc_port=0))
    server.start()            # binds, loads the models, returns when ready
    print(server.http_url, server.grpc_address)
    server.stop()
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import uvicorn

from edgefleet.errors import EdgefleetError, UnavailableError
from edgefleet.runtime.config import ModelConfig
from edgefleet.runtime.manager import ModelManager
from edgefleet.runtime.repository import ModelRepository
from edgefleet.runtime.session import SessionConfig
from edgefleet.serving.dataplane import DataPlane
from edgefleet.serving.grpc_edge import build_grpc_server
from edgefleet.serving.metrics import ServeMetrics
from edgefleet.serving.rest import RestApp, build_rest_app

__all__ = ["ServeSettings", "Server", "build_server"]

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 64 * 1024 * 1024


@dataclass(frozen=True)
class ServeSettings:
    """Where and how the server listens. Ports 0 pick free ports; ``None`` turns an edge off."""

    host: str = "127.0.0.1"
    http_port: int | None = 8000
    grpc_port: int | None = 8001
    max_body_bytes: int = DEFAULT_MAX_BODY
    workers: int = 8
    """Threads that decode, run and encode requests (per edge)."""
    inline_below_ms: float = 10.0
    """REST: a request alone in flight, for a model that recently took less than this, runs on the
    event loop (saves two thread switches at batch 1); 0 always uses a worker thread."""
    model_name: str | None = None
    """The model's name when serving a single ``.onnx`` file (default: the file's stem)."""
    session: SessionConfig = field(default_factory=SessionConfig)
    model_defaults: ModelConfig = field(default_factory=ModelConfig)
    """Model configuration for models without a config file (and keys a file leaves out)."""
    poll_seconds: float | None = None
    """Rescan the repository this often: changed models reload, removed ones unload."""


class Server:
    """One inference server: ``start`` (non-blocking), ``stop``, and the bound addresses."""

    def __init__(self, dataplane: DataPlane, settings: ServeSettings) -> None:
        self.dataplane = dataplane
        self.settings = settings
        self.load_errors: dict[str, EdgefleetError] = {}
        self.http_port: int | None = None
        self.grpc_port: int | None = None
        self._executor = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="rest")
        self._uvicorn: uvicorn.Server | None = None
        self._http_thread: threading.Thread | None = None
        self._grpc: grpc.Server | None = None
        self._stopped = threading.Event()
        self._poller: threading.Thread | None = None
        self.rest_app: RestApp | None = None

    @property
    def manager(self) -> ModelManager:
        return self.dataplane.manager

    @property
    def http_url(self) -> str | None:
        return None if self.http_port is None else f"http://{_url_host(self.settings.host)}:{self.http_port}"

    @property
    def grpc_address(self) -> str | None:
        return None if self.grpc_port is None else f"{_url_host(self.settings.host)}:{self.grpc_port}"

    def start(self, *, load: bool = True, timeout: float = 30.0) -> None:
        """Bind both edges, then load every model in the repository; returns once ready.

        A model that fails to load is reported in :attr:`load_errors`; the others serve.
        """
        s = self.settings
        try:
            if s.grpc_port is not None:
                self._grpc, self.grpc_port = build_grpc_server(
                    self.dataplane,
                    address=f"{_url_host(s.host)}:{s.grpc_port}",
                    max_body_bytes=s.max_body_bytes,
                    workers=s.workers,
                )
                self._grpc.start()
            if s.http_port is not None:
                self._start_http(timeout)
        except BaseException:
            self.stop(grace=0)
            raise
        if load:
            self.load_errors = self.manager.load_all()
        self.dataplane.mark_ready()
        if s.poll_seconds:
            self._poller = threading.Thread(
                target=self._poll, args=(s.poll_seconds,), name="poll", daemon=True
            )
            self._poller.start()

    def _poll(self, every: float) -> None:
        while not self._stopped.wait(every):
            for name, exc in self.manager.poll().items():
                log.warning(
                    "model reload failed", extra={"model": name, "code": exc.code, "error": exc.message}
                )

    def _start_http(self, timeout: float) -> None:
        s = self.settings
        family = socket.AF_INET6 if ":" in s.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP: asyncio sets NODELAY
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((s.host, s.http_port or 0))
        except OSError as exc:
            sock.close()
            raise UnavailableError(
                f"cannot bind the HTTP port {s.host}:{s.http_port}: {exc.strerror or exc}",
                code="serve.bind_failed",
                address=f"{s.host}:{s.http_port}",
            ) from exc
        self.http_port = int(sock.getsockname()[1])
        self.rest_app = build_rest_app(
            self.dataplane, self._executor, max_body_bytes=s.max_body_bytes, inline_below_ms=s.inline_below_ms
        )
        config = uvicorn.Config(
            self.rest_app,
            http="httptools",
            loop="asyncio",
            lifespan="off",
            access_log=False,
            log_level="warning",
            timeout_graceful_shutdown=5,
            timeout_keep_alive=75,
            limit_concurrency=None,
            backlog=1024,
        )
        server = uvicorn.Server(config)
        self._uvicorn = server

        def run() -> None:
            asyncio.run(server.serve(sockets=[sock]))

        self._http_thread = threading.Thread(target=run, name="http", daemon=True)
        self._http_thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._http_thread.is_alive() or time.monotonic() > deadline:
                raise UnavailableError("the HTTP server did not start", code="serve.start_failed")
            time.sleep(0.01)

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let in-flight requests finish (up to ``grace`` seconds), unload models."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._grpc is not None:
            self._grpc.stop(grace).wait(grace + 1)
        if self._http_thread is not None:
            self._http_thread.join(grace + 1)
        if self._poller is not None:
            self._poller.join(grace + 1)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.manager.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`stop` is called (from another thread or a signal handler)."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def build_server(
    model: Path | str,
    settings: ServeSettings | None = None,
    *,
    metrics: ServeMetrics | None = None,
) -> Server:
    """A server for a model repository directory or a single ``.onnx`` file (not started yet)."""
    settings = settings or ServeSettings()
    metrics = metrics or ServeMetrics()
    repository = ModelRepository(model, single_name=settings.model_name, defaults=settings.model_defaults)
    manager = ModelManager(repository, settings.session, observer=metrics)
    return Server(DataPlane(manager, metrics), settings)
