"""Hot reload under load: clients hammer the server while new versions are placed and loaded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as tg
import tritonclient.http as th

from tests.integration.serve.serve_process import serve_process
from tests.unit.serve.serve_models import affine_model, make_repo

X = np.ones((1, 4), np.float32)
IDS = np.zeros((1, 2), np.int64)


def _http_caller(address: str) -> Callable[[], float]:
    client = th.InferenceServerClient(address)
    a = th.InferInput("x", [1, 4], "FP32")
    a.set_data_from_numpy(X, binary_data=True)
    b = th.InferInput("ids", [1, 2], "INT64")
    b.set_data_from_numpy(IDS, binary_data=True)

    def call() -> float:
        out = client.infer("affine", [a, b]).as_numpy("y")
        assert out is not None
        return float(out[0, 0])

    return call


def _grpc_caller(address: str) -> Callable[[], float]:
    client = tg.InferenceServerClient(address)
    a = tg.InferInput("x", [1, 4], "FP32")
    a.set_data_from_numpy(X)
    b = tg.InferInput("ids", [1, 2], "INT64")
    b.set_data_from_numpy(IDS)

    def call() -> float:
        out = client.infer("affine", [a, b]).as_numpy("y")
        assert out is not None
        return float(out[0, 0])

    return call


def _place(repo: Path, version: int, scale: float) -> None:
    """Write the new version beside the repository, then move it in with one rename."""
    staging = repo.parent / f"staging-{version}"
    affine_model(staging / "model.onnx", scale)
    staging.rename(repo / "affine" / str(version))


@pytest.mark.integration
def test_reload_under_load_has_zero_failed_requests(tmp_path: Path) -> None:
    """REST and gRPC clients see no failure across two reloads; requests after a load see the new version."""
    repo = make_repo(tmp_path / "repo")
    with serve_process(repo, "--no-cache", "--threads", "1") as srv:
        stop = threading.Event()
        failures: list[str] = []
        records: list[tuple[float, float]] = []
        lock = threading.Lock()

        def hammer(make: Callable[[str], Callable[[], float]], address: str) -> None:
            call = make(address)
            while not stop.is_set():
                started = time.monotonic()
                try:
                    value = call()
                except Exception as exc:  # noqa: BLE001 - every failure is recorded and fails the test
                    with lock:
                        failures.append(repr(exc))
                    continue
                with lock:
                    records.append((started, value))

        threads = [
            threading.Thread(target=hammer, args=(_http_caller, srv.http)),
            threading.Thread(target=hammer, args=(_http_caller, srv.http)),
            threading.Thread(target=hammer, args=(_grpc_caller, srv.grpc)),
            threading.Thread(target=hammer, args=(_grpc_caller, srv.grpc)),
        ]
        for t in threads:
            t.start()
        time.sleep(0.5)
        _place(repo, 2, 5.0)
        th.InferenceServerClient(srv.http).load_model("affine")
        loaded_v2 = time.monotonic()
        time.sleep(0.5)
        _place(repo, 3, 7.0)
        tg.InferenceServerClient(srv.grpc).load_model("affine")
        loaded_v3 = time.monotonic()
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(timeout=30)

    assert failures == []
    values = {v for _, v in records}
    assert values == {3.0, 6.0, 8.0}, values  # x * scale + 1 for versions 1, 2, 3
    assert all(v == 8.0 for started, v in records if started > loaded_v3)
    assert all(v in (6.0, 8.0) for started, v in records if started > loaded_v2)
    assert len(records) > 50


@pytest.mark.integration
def test_polling_picks_up_a_new_version(tmp_path: Path) -> None:
    """With --poll-seconds a version placed in the repository is served without any API call."""
    repo = make_repo(tmp_path / "repo")
    with serve_process(repo, "--no-cache", "--poll-seconds", "0.2") as srv:
        call = _grpc_caller(srv.grpc)
        assert call() == 3.0
        _place(repo, 2, 5.0)
        deadline = time.monotonic() + 20
        while call() != 6.0:
            assert time.monotonic() < deadline, "new version not served"
            time.sleep(0.05)
