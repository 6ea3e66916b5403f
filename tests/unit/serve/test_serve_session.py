"""ModelSession: signature, run, validation errors, threads from the CPU budget, optimized cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgefleet.probe.cpu_budget import CpuBudget
from edgefleet.runtime.errors import InferInputError, ModelLoadError
from edgefleet.runtime.session import ModelSession, SessionConfig
from tests.unit.serve.serve_models import affine_expected, affine_model


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    return affine_model(tmp_path / "m.onnx", 3.0)


def _feeds(n: int = 2) -> dict[str, np.ndarray]:
    return {"x": np.arange(4 * n, dtype=np.float32).reshape(n, 4), "ids": np.ones((n, 2), dtype=np.int64)}


@pytest.mark.unit
def test_signature_in_kserve_terms(model_path: Path) -> None:
    """Inputs and outputs carry KServe datatypes and -1 for the dynamic batch dimension."""
    s = ModelSession.load(model_path)
    assert [(t.name, t.datatype, t.shape) for t in s.inputs] == [
        ("x", "FP32", (-1, 4)),
        ("ids", "INT64", (-1, 2)),
    ]
    assert [(t.name, t.datatype, t.shape) for t in s.outputs] == [
        ("y", "FP32", (-1, 4)),
        ("count", "INT64", (-1, 1)),
    ]
    assert s.providers == ("CPUExecutionProvider",)


@pytest.mark.unit
def test_run_matches_the_math(model_path: Path) -> None:
    """run returns every output, or only the requested ones."""
    s = ModelSession.load(model_path)
    feeds = _feeds()
    out = s.run(feeds)
    np.testing.assert_allclose(out["y"], affine_expected(feeds["x"], 3.0))
    assert out["count"].tolist() == [[2], [2]]
    assert list(s.run(feeds, ["count"])) == ["count"]


@pytest.mark.unit
def test_threads_come_from_the_cpu_budget(model_path: Path) -> None:
    """A 1.5-CPU quota on 3 CPUs gives one thread; an explicit count wins."""
    budget = CpuBudget(cpus=(0, 1, 2), quota=1.5, source="quota:/sys/fs/cgroup/x")
    s = ModelSession.load(model_path, budget_reader=lambda: budget)
    assert s.threads == 1
    assert s.budget is budget
    assert ModelSession.load(model_path, threads=2, budget_reader=lambda: budget).threads == 2


@pytest.mark.unit
def test_spinning_is_a_tunable(model_path: Path) -> None:
    """Spinning off still runs and is recorded in the session's config."""
    s = ModelSession.load(model_path, config=SessionConfig(allow_spinning=False))
    assert s.config.allow_spinning is False
    np.testing.assert_allclose(s.run(_feeds())["y"], affine_expected(_feeds()["x"], 3.0))


@pytest.mark.unit
def test_optimized_model_is_cached_and_reused(model_path: Path, tmp_path: Path) -> None:
    """The first load writes the optimized graph, the next loads it, with the same outputs."""
    config = SessionConfig(cache_dir=tmp_path / "cache")
    first = ModelSession.load(model_path, config=config)
    assert first.optimized_cache == "written"
    assert len(list((tmp_path / "cache" / "optimized").glob("*.onnx"))) == 1
    second = ModelSession.load(model_path, config=config)
    assert second.optimized_cache == "hit"
    np.testing.assert_array_equal(first.run(_feeds())["y"], second.run(_feeds())["y"])
    other_level = ModelSession.load(
        model_path, config=SessionConfig(cache_dir=tmp_path / "cache", optimization_level="basic")
    )
    assert other_level.optimized_cache == "written"


@pytest.mark.unit
def test_pick_fastest_with_one_candidate_does_not_measure(model_path: Path, tmp_path: Path) -> None:
    """On a CPU-only build the only candidate is chosen without timing."""
    s = ModelSession.load(model_path, config=SessionConfig(pick_fastest=True, cache_dir=tmp_path))
    assert s.choice.providers == ("CPUExecutionProvider",)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("feeds", "code", "tensor"),
    [
        (
            {"x": np.zeros((1, 4), np.float32), "ids": np.zeros((1, 2), np.int64), "z": np.zeros(1)},
            "infer.unknown_input",
            "z",
        ),
        ({"x": np.zeros((1, 4), np.float64), "ids": np.zeros((1, 2), np.int64)}, "infer.dtype_mismatch", "x"),
        ({"x": np.zeros((1, 5), np.float32), "ids": np.zeros((1, 2), np.int64)}, "infer.shape_mismatch", "x"),
        ({"x": np.zeros((4,), np.float32), "ids": np.zeros((1, 2), np.int64)}, "infer.shape_mismatch", "x"),
        ({"x": np.zeros((1, 4), np.float32)}, "infer.missing_input", "ids"),
    ],
)
def test_validation_names_the_tensor(
    model_path: Path, feeds: dict[str, np.ndarray], code: str, tensor: str
) -> None:
    """Each mismatch has a stable code and names the tensor and what was expected."""
    s = ModelSession.load(model_path)
    with pytest.raises(InferInputError) as err:
        s.validate(feeds)
    assert err.value.code == code
    assert err.value.fields["tensor"] == tensor
    assert "expected" in err.value.fields
    assert err.value.http_status == 400


@pytest.mark.unit
def test_unknown_output_is_rejected(model_path: Path) -> None:
    s = ModelSession.load(model_path)
    with pytest.raises(InferInputError) as err:
        s.validate(_feeds(), ["nope"])
    assert err.value.code == "infer.unknown_output"


@pytest.mark.unit
def test_corrupt_model_is_a_load_error(tmp_path: Path) -> None:
    """A file that is not a model fails with runtime.load_failed naming the path."""
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ModelLoadError) as err:
        ModelSession.load(bad)
    assert err.value.code == "runtime.load_failed"
    assert str(bad) in err.value.message
    with pytest.raises(ModelLoadError):
        ModelSession.load(tmp_path / "missing.onnx")


@pytest.mark.unit
def test_spinning_defaults_off_under_a_cpu_quota(model_path: Path) -> None:
    """Unset, spinning is on with a CPU set only and off when a quota bounds the process."""
    free = CpuBudget(cpus=(0, 1), quota=None, source="affinity")
    quota = CpuBudget(cpus=(0, 1), quota=1.0, source="quota:/sys/fs/cgroup/w")
    assert ModelSession.load(model_path, budget_reader=lambda: free).config.allow_spinning is True
    assert ModelSession.load(model_path, budget_reader=lambda: quota).config.allow_spinning is False
    forced = ModelSession.load(
        model_path, config=SessionConfig(allow_spinning=True), budget_reader=lambda: quota
    )
    assert forced.config.allow_spinning is True
