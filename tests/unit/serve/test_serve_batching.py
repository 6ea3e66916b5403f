"""Dynamic batching: concurrent requests are joined along the batch dimension and split back."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from edgefleet.runtime.config import BatchingConfig
from edgefleet.runtime.scheduler import DirectRunner, DynamicBatcher
from edgefleet.runtime.session import ModelSession
from tests.unit.serve.serve_models import affine_expected, affine_model


@pytest.fixture
def session(tmp_path: Path) -> ModelSession:
    return ModelSession.load(affine_model(tmp_path / "m.onnx", 2.0))


def _feeds(i: int, rows: int = 1) -> dict[str, np.ndarray]:
    return {"x": np.full((rows, 4), i, np.float32), "ids": np.full((rows, 2), i, np.int64)}


@pytest.mark.unit
def test_concurrent_requests_are_batched_and_split_correctly(session: ModelSession) -> None:
    """8 concurrent requests within a 200 ms window run in fewer runs, each gets its own rows."""
    sizes: list[int] = []
    batcher = DynamicBatcher(
        session, BatchingConfig(enabled=True, max_batch_size=8, max_queue_delay_ms=200), on_batch=sizes.append
    )
    barrier = threading.Barrier(8)

    def one(i: int) -> tuple[int, dict[str, np.ndarray], int]:
        barrier.wait()
        result = batcher.submit(_feeds(i), None)
        return i, result.outputs, result.batch_size

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    batcher.close()
    for i, outputs, _ in results:
        np.testing.assert_allclose(outputs["y"], affine_expected(_feeds(i)["x"], 2.0))
        assert outputs["count"].tolist() == [[2 * i]]
    assert sum(sizes) == 8
    assert max(sizes) > 1
    assert len(sizes) < 8


@pytest.mark.unit
def test_preferred_size_dispatches_without_waiting(session: ModelSession) -> None:
    """Reaching a preferred batch size sends the batch before the (long) delay expires."""
    sizes: list[int] = []
    batcher = DynamicBatcher(
        session,
        BatchingConfig(enabled=True, max_batch_size=8, max_queue_delay_ms=10_000, preferred_batch_sizes=[2]),
        on_batch=sizes.append,
    )
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(batcher.submit, _feeds(i), ["y"]) for i in range(2)]
        results = [f.result(timeout=5) for f in futures]
    batcher.close()
    assert sizes == [2]
    assert all(list(r.outputs) == ["y"] for r in results)


@pytest.mark.unit
def test_incompatible_shapes_are_not_joined(session: ModelSession, tmp_path: Path) -> None:
    """Requests whose non-batch dims differ run separately and still succeed."""
    wide = ModelSession.load(affine_model(tmp_path / "w.onnx", 2.0, width="W"))
    sizes: list[int] = []
    batcher = DynamicBatcher(
        wide, BatchingConfig(enabled=True, max_batch_size=8, max_queue_delay_ms=50), on_batch=sizes.append
    )
    feeds_a = {"x": np.ones((1, 4), np.float32), "ids": np.ones((1, 2), np.int64)}
    feeds_b = {"x": np.ones((1, 6), np.float32), "ids": np.ones((1, 2), np.int64)}
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(batcher.submit, feeds_a, None)
        b = pool.submit(batcher.submit, feeds_b, None)
        assert a.result(timeout=5).outputs["y"].shape == (1, 4)
        assert b.result(timeout=5).outputs["y"].shape == (1, 6)
    batcher.close()
    assert sorted(sizes) == [1, 1]
    del session


@pytest.mark.unit
def test_errors_reach_every_caller_and_direct_runner_counts(session: ModelSession) -> None:
    """Direct runs report batch size and queue time; a failing batch fails its callers only."""
    runner = DirectRunner(session)
    result = runner.submit(_feeds(1, rows=3), None)
    assert result.batch_size == 3
    assert result.queue_seconds >= 0
    batcher = DynamicBatcher(session, BatchingConfig(enabled=True, max_queue_delay_ms=1))
    with pytest.raises(Exception, match="ONNX Runtime"):
        batcher.submit({"x": np.ones((1, 4), np.float32)}, None)
    assert batcher.submit(_feeds(1), None).outputs["y"].shape == (1, 4)
    batcher.close()
