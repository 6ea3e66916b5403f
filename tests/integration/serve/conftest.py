"""An in-process server (real uvicorn and gRPC on free ports) over a repository of test models."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.runtime.session import SessionConfig
from edgefleet.serving import Server, ServeSettings, build_server
from tests.unit.serve.serve_models import affine_model, make_repo, strings_model

MAX_BODY = 2_000_000


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = make_repo(tmp_path_factory.mktemp("repo"), with_wheel=True, corrupt=True)
    affine_model(root / "batched" / "1" / "model.onnx", 2.0)
    strings_model(root / "strings" / "1" / "model.onnx")
    (root / "batched" / "config.toml").write_text(
        "[dynamic_batching]\nenabled = true\nmax_batch_size = 8\nmax_queue_delay_ms = 150\n"
    )
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def server(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = ServeSettings(
        http_port=0,
        grpc_port=0,
        max_body_bytes=MAX_BODY,
        workers=8,
        session=SessionConfig(cache_dir=tmp_path_factory.mktemp("cache"), intra_op_threads=1),
    )
    srv = build_server(repo, settings)
    srv.start()
    yield srv
    srv.stop()
