"""Model repository layout, per-model config files and version policies."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefleet.runtime.errors import ModelConfigError, ModelNotFoundError
from edgefleet.runtime.repository import ModelRepository
from tests.unit.serve.serve_models import affine_model


@pytest.mark.unit
def test_layout_lists_models_with_versions(tmp_path: Path) -> None:
    """Directories with <n>/model.onnx are models; others are ignored; newest version is selected."""
    affine_model(tmp_path / "a" / "1" / "model.onnx", 1.0)
    affine_model(tmp_path / "a" / "3" / "model.onnx", 3.0)
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    repo = ModelRepository(tmp_path)
    assert repo.names() == ["a"]
    source = repo.source("a")
    assert sorted(source.versions) == [1, 3]
    assert source.selected() == [3]


@pytest.mark.unit
def test_single_file_is_version_1(tmp_path: Path) -> None:
    path = affine_model(tmp_path / "thing.onnx", 1.0)
    repo = ModelRepository(path)
    assert repo.names() == ["thing"]
    assert repo.source("thing").versions == {1: path}
    assert ModelRepository(path, single_name="other").names() == ["other"]
    with pytest.raises(ModelNotFoundError):
        repo.source("nope")


@pytest.mark.unit
def test_toml_config_is_read(tmp_path: Path) -> None:
    affine_model(tmp_path / "a" / "1" / "model.onnx", 1.0)
    affine_model(tmp_path / "a" / "2" / "model.onnx", 1.0)
    (tmp_path / "a" / "config.toml").write_text(
        'version_policy = "all"\ninstances = 2\n[runtime]\nproviders = ["cpu"]\nallow_spinning = false\n'
        "[dynamic_batching]\nenabled = true\nmax_batch_size = 4\npreferred_batch_sizes = [2, 4]\n"
    )
    source = ModelRepository(tmp_path).source("a")
    assert source.selected() == [1, 2]
    assert source.config.instances == 2
    assert source.config.runtime.allow_spinning is False
    assert source.config.dynamic_batching.preferred_batch_sizes == [2, 4]


@pytest.mark.unit
def test_json_config_and_specific_versions(tmp_path: Path) -> None:
    for v in (1, 2, 3):
        affine_model(tmp_path / "a" / str(v) / "model.onnx", 1.0)
    (tmp_path / "a" / "config.json").write_text('{"version_policy": [1, 3]}')
    assert ModelRepository(tmp_path).source("a").selected() == [1, 3]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("instancez = 2\n", "instancez"),
        ("[dynamic_batching]\nmax_batch_size = 2\npreferred_batch_sizes = [4]\n", "dynamic_batching"),
        ("[runtime]\noptimization_level = 'max'\n", "runtime.optimization_level"),
        ("this is not toml", None),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, field: str | None) -> None:
    """A config that does not validate is a runtime.config error naming the file and key."""
    affine_model(tmp_path / "a" / "1" / "model.onnx", 1.0)
    (tmp_path / "a" / "config.toml").write_text(text)
    with pytest.raises(ModelConfigError) as err:
        ModelRepository(tmp_path).source("a")
    assert err.value.code == "runtime.config"
    assert "config.toml" in err.value.message
    if field is not None:
        assert err.value.fields["field"] == field


@pytest.mark.unit
def test_missing_path_and_unknown_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as err:
        ModelRepository(tmp_path / "nowhere")
    assert err.value.code == "runtime.repository_not_found"
    with pytest.raises(ModelNotFoundError) as err2:
        ModelRepository(tmp_path).source("../etc")
    assert err2.value.http_status == 404


@pytest.mark.unit
def test_server_defaults_apply_under_the_file(tmp_path: Path) -> None:
    """Keys a config file leaves out come from the server's defaults; the file's keys win."""
    from edgefleet.runtime.config import BatchingConfig, ModelConfig

    affine_model(tmp_path / "a" / "1" / "model.onnx", 1.0)
    affine_model(tmp_path / "b" / "1" / "model.onnx", 1.0)
    (tmp_path / "a" / "config.toml").write_text("[dynamic_batching]\nmax_queue_delay_ms = 5.0\n")
    defaults = ModelConfig(instances=2, dynamic_batching=BatchingConfig(enabled=True, max_batch_size=16))
    repo = ModelRepository(tmp_path, defaults=defaults)
    a = repo.source("a").config
    assert a.instances == 2
    assert a.dynamic_batching.enabled is True
    assert a.dynamic_batching.max_batch_size == 16
    assert a.dynamic_batching.max_queue_delay_ms == 5.0
    assert repo.source("b").config == defaults
