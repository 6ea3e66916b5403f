"""ModelManager: load, unload, a corrupt model beside good ones, hot reload without failures."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgefleet.runtime.errors import ModelLoadError, ModelNotFoundError, ModelNotReadyError
from edgefleet.runtime.manager import ModelManager
from edgefleet.runtime.repository import ModelRepository
from tests.unit.serve.serve_models import affine_expected, affine_model, make_repo

FEEDS = {"x": np.ones((1, 4), np.float32), "ids": np.zeros((1, 2), np.int64)}


class Observer:
    def __init__(self) -> None:
        self.loads: list[tuple[str, str]] = []
        self.batches: list[int] = []

    def model_loaded(self, name: str, version: str, seconds: float) -> None:
        assert seconds >= 0
        self.loads.append((name, version))

    def batch_executed(self, name: str, version: str, size: int) -> None:
        assert (name, version) in self.loads
        self.batches.append(size)


@pytest.mark.unit
def test_corrupt_model_fails_alone(tmp_path: Path) -> None:
    """A corrupt model is UNAVAILABLE with its reason; the good one serves."""
    obs = Observer()
    manager = ModelManager(ModelRepository(make_repo(tmp_path, corrupt=True)), observer=obs)
    errors = manager.load_all()
    assert list(errors) == ["broken"]
    assert isinstance(errors["broken"], ModelLoadError)
    states = {(r.name, r.state) for r in manager.index()}
    assert states == {("affine", "READY"), ("broken", "UNAVAILABLE")}
    with manager.lease("affine") as model:
        np.testing.assert_allclose(model.infer(FEEDS).outputs["y"], affine_expected(FEEDS["x"], 2.0))
    with pytest.raises(ModelNotReadyError), manager.lease("broken"):
        pass
    assert obs.loads == [("affine", "1")]
    assert obs.batches == [1]
    manager.close()


@pytest.mark.unit
def test_unknown_model_and_version_are_404(tmp_path: Path) -> None:
    manager = ModelManager(ModelRepository(make_repo(tmp_path)))
    manager.load_all()
    with pytest.raises(ModelNotFoundError) as err:
        manager.get("nope")
    assert err.value.code == "runtime.model_not_found"
    with pytest.raises(ModelNotFoundError) as err2:
        manager.get("affine", "7")
    assert err2.value.code == "runtime.version_not_found"
    assert err2.value.fields["loaded"] == [1]
    manager.close()


@pytest.mark.unit
def test_reload_switches_version_and_in_flight_finishes_on_old(tmp_path: Path) -> None:
    """A request holding v1 completes on v1 after v2 replaced it; new requests get v2."""
    repo = make_repo(tmp_path)
    manager = ModelManager(ModelRepository(repo))
    manager.load_all()
    with manager.lease("affine") as old:
        affine_model(repo / "affine" / "2" / "model.onnx", 5.0)
        manager.load("affine")
        assert manager.get("affine").version == 2
        np.testing.assert_allclose(old.infer(FEEDS).outputs["y"], affine_expected(FEEDS["x"], 2.0))
    with manager.lease("affine") as new:
        np.testing.assert_allclose(new.infer(FEEDS).outputs["y"], affine_expected(FEEDS["x"], 5.0))
    assert [r.version for r in manager.index()] == ["2"]
    manager.close()


@pytest.mark.unit
def test_failed_reload_keeps_old_version(tmp_path: Path) -> None:
    """A corrupt new version raises and the old one keeps serving."""
    repo = make_repo(tmp_path)
    manager = ModelManager(ModelRepository(repo))
    manager.load_all()
    (repo / "affine" / "2").mkdir()
    (repo / "affine" / "2" / "model.onnx").write_bytes(b"junk")
    with pytest.raises(ModelLoadError):
        manager.load("affine")
    assert manager.get("affine").version == 1
    rows = {(r.version, r.state) for r in manager.index()}
    assert rows == {("1", "READY"), ("2", "UNAVAILABLE")}
    manager.close()


@pytest.mark.unit
def test_unload_then_load(tmp_path: Path) -> None:
    manager = ModelManager(ModelRepository(make_repo(tmp_path)))
    manager.load_all()
    manager.unload("affine")
    assert not manager.is_ready("affine")
    with pytest.raises(ModelNotReadyError):
        manager.get("affine")
    manager.load("affine")
    assert manager.is_ready("affine")
    with pytest.raises(ModelNotFoundError):
        manager.unload("nope")
    manager.close()


@pytest.mark.unit
def test_reload_under_concurrent_use_never_fails(tmp_path: Path) -> None:
    """Threads infer continuously while versions are swapped; no request fails."""
    repo = make_repo(tmp_path)
    manager = ModelManager(ModelRepository(repo))
    manager.load_all()
    stop = threading.Event()
    failures: list[BaseException] = []
    seen: set[float] = set()

    def hammer() -> None:
        while not stop.is_set():
            try:
                with manager.lease("affine") as m:
                    seen.add(float(m.infer(FEEDS).outputs["y"][0, 0]))
            except BaseException as exc:  # noqa: BLE001 - the test records every failure
                failures.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for version, scale in ((2, 3.0), (3, 4.0), (4, 5.0)):
        affine_model(repo / "affine" / str(version) / "model.onnx", scale)
        manager.load("affine")
    deadline = time.monotonic() + 10
    while 6.0 not in seen and time.monotonic() < deadline:  # 1 * 5 + 1 from the last version
        time.sleep(0.01)
    stop.set()
    for t in threads:
        t.join()
    assert failures == []
    assert 6.0 in seen
    manager.close()


@pytest.mark.unit
def test_poll_follows_the_repository(tmp_path: Path) -> None:
    """poll loads new models, reloads changed ones, unloads removed ones, and leaves the rest."""
    import shutil

    repo = make_repo(tmp_path)
    manager = ModelManager(ModelRepository(repo))
    manager.load_all()
    first = manager.get("affine")
    assert manager.poll() == {}
    assert manager.get("affine") is first
    affine_model(repo / "other" / "1" / "model.onnx", 1.0)
    affine_model(repo / "affine" / "2" / "model.onnx", 9.0)
    assert manager.poll() == {}
    assert manager.get("affine").version == 2
    assert manager.is_ready("other")
    shutil.rmtree(repo / "other")
    manager.poll()
    assert not manager.is_ready("other")
    assert "other" not in {r.name for r in manager.index()}
    manager.close()


@pytest.mark.unit
def test_batching_defaults_to_off_on_cpu(tmp_path: Path) -> None:
    """Unset, batching follows the provider (CPU: off); the server's defaults can turn it on."""
    from edgefleet.runtime.config import BatchingConfig, ModelConfig

    repo = make_repo(tmp_path)
    manager = ModelManager(ModelRepository(repo))
    manager.load_all()
    assert manager.get("affine").batching is False
    manager.close()
    on = ModelConfig(dynamic_batching=BatchingConfig(enabled=True, max_batch_size=4))
    manager = ModelManager(ModelRepository(repo, defaults=on))
    manager.load_all()
    assert manager.get("affine").batching is True
    manager.close()


@pytest.mark.unit
def test_bad_config_is_reported_and_keeps_the_old_version(tmp_path: Path) -> None:
    """A config that stops validating fails the reload with runtime.config; v1 keeps serving."""
    from edgefleet.runtime.errors import ModelConfigError

    repo = make_repo(tmp_path)
    manager = ModelManager(ModelRepository(repo))
    manager.load_all()
    (repo / "affine" / "config.toml").write_text("instances = 0\n")
    with pytest.raises(ModelConfigError):
        manager.load("affine")
    assert manager.get("affine").version == 1
    assert any(r.state == "UNAVAILABLE" and "instances" in r.reason for r in manager.index())
    (repo / "affine" / "config.toml").write_text("instances = 2\n")
    manager.load("affine")
    assert manager.get("affine").config.instances == 2
    assert all(r.state == "READY" for r in manager.index())
    manager.close()


@pytest.mark.unit
def test_single_file_is_reloaded_when_replaced(tmp_path: Path) -> None:
    """Serving one file, replacing it (by rename) reloads it in place as version 1."""
    path = affine_model(tmp_path / "m.onnx", 2.0)
    manager = ModelManager(ModelRepository(path))
    manager.load_all()
    with manager.lease("m") as m:
        np.testing.assert_allclose(m.infer(FEEDS).outputs["y"], affine_expected(FEEDS["x"], 2.0))
    affine_model(tmp_path / "next.onnx", 4.0).replace(path)
    assert manager.poll() == {}
    with manager.lease("m") as m:
        assert m.version == 1
        np.testing.assert_allclose(m.infer(FEEDS).outputs["y"], affine_expected(FEEDS["x"], 4.0))
    manager.close()
