"""Spec loading: TOML and YAML, every error names the key and its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefleet.pipeline.errors import PipelineSpecError
from edgefleet.pipeline.specfile import load_spec, parse_spec

pytestmark = pytest.mark.unit

GOOD_TOML = """\
[pipeline]
name = "door"
policy = "latest"
max_fps = 10

[[sources]]
kind = "video"
name = "cam"
url = "rtsp://10.0.0.5/stream"

[[models]]
name = "det"
path = "det.onnx"
[models.preprocess]
resize = { width = 640, height = 640, mode = "letterbox" }
[models.postprocess]
kind = "yolo"
conf_threshold = 0.4

[[models]]
name = "cls"
path = "cls.onnx"
on = "det"
[models.postprocess]
kind = "classify"
top_k = 3

[[sinks]]
kind = "mqtt"
topic = "plant/{source}"
"""


def _error(text: str, fmt: str = "toml") -> PipelineSpecError:
    with pytest.raises(PipelineSpecError) as info:
        parse_spec(text, fmt=fmt, origin="door.toml")
    return info.value


def test_pipeline_spec_toml_parses_a_two_model_chain() -> None:
    spec = parse_spec(GOOD_TOML)
    assert spec.pipeline.policy == "latest"
    assert spec.pipeline.max_fps == 10
    assert [m.name for m in spec.models] == ["det", "cls"]
    assert spec.models[1].on == "det"
    assert spec.models[0].preprocess.resize is not None
    assert spec.models[0].preprocess.resize.mode == "letterbox"
    assert spec.sinks[0].kind == "mqtt"


def test_pipeline_spec_unknown_key_names_key_and_line() -> None:
    err = _error(GOOD_TOML.replace("conf_threshold = 0.4", "conf_treshold = 0.4"))
    assert err.fields["key"] == "models[0].postprocess.conf_treshold"
    assert err.fields["line"] == 18
    assert "door.toml:18" in err.message
    assert "unknown key" in err.message


def test_pipeline_spec_bad_value_in_second_array_table_names_its_line() -> None:
    err = _error(GOOD_TOML.replace("top_k = 3", "top_k = 0"))
    assert err.fields["key"] == "models[1].postprocess.top_k"
    assert err.fields["line"] == 26


def test_pipeline_spec_bad_policy_lists_what_is_allowed() -> None:
    err = _error(GOOD_TOML.replace('policy = "latest"', 'policy = "fastest"'))
    assert err.fields == {"key": "pipeline.policy", "line": 3}
    assert "'latest'" in err.message
    assert "'every'" in err.message


def test_pipeline_spec_unknown_kind_points_at_the_kind_line() -> None:
    err = _error(GOOD_TOML.replace('kind = "mqtt"', 'kind = "kafka"'))
    assert err.fields["key"] == "sinks[0].kind"
    assert err.fields["line"] == 29
    assert "jsonl" in err.message


def test_pipeline_spec_chain_must_reference_an_earlier_model() -> None:
    err = _error(GOOD_TOML.replace('on = "det"', 'on = "ocr"'))
    assert err.fields["key"] == "models[1].on"
    assert err.fields["line"] == 23
    assert "allowed: frame, det" in err.message


def test_pipeline_spec_duplicate_names_are_refused() -> None:
    err = _error(GOOD_TOML.replace('name = "cls"', 'name = "det"'))
    assert err.fields["key"] == "models[1].name"
    assert err.fields["line"] == 21


def test_pipeline_spec_model_needs_path_or_url() -> None:
    err = _error(GOOD_TOML.replace('path = "cls.onnx"\n', ""))
    assert err.fields["key"] == "models[1]"
    assert err.fields["line"] == 20
    assert "exactly one of path" in err.message


def test_pipeline_spec_toml_syntax_error_has_a_line() -> None:
    err = _error(GOOD_TOML.replace("max_fps = 10", "max_fps = "))
    assert err.fields["line"] == 4


def test_pipeline_spec_yaml_errors_name_key_and_line() -> None:
    text = """\
pipeline:
  policy: every
sources:
  - kind: images
    name: shelf
    path: pics
models:
  - name: cls
    path: m.onnx
    preprocess:
      mean: [0.5, 0.5]
    postprocess:
      kind: classify
"""
    err = _error(text, "yaml")
    assert err.fields["key"] == "models[0].preprocess"
    assert err.fields["line"] == 10
    assert "mean needs 1 or 3 values" in err.message
    ok = parse_spec(text.replace("[0.5, 0.5]", "[0.5]"), fmt="yaml")
    assert ok.sources[0].kind == "images"


def test_pipeline_spec_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PipelineSpecError, match="does not exist") as info:
        load_spec(tmp_path / "nope.toml")
    assert info.value.code == "pipeline.spec_not_found"


def test_pipeline_spec_lines_survive_dotted_keys_multiline_arrays_and_comments() -> None:
    text = """\
# a comment with [brackets] = "not a table"
pipeline.name = "x"

[[sources]]
kind = "video"
name = "a"
url = "a.mp4"

[[sources]]
kind = "video"
name = "b"
url = "b.mp4"
reconnect.initial_s = 1

[[models]]
name = "m"
path = "m.onnx"
preprocess.mean = [
    0.5,
    0.5,
    0.5,
]
preprocess.std = [0.1, 0.1, 0.0]
postprocess = { kind = "classify" }
"""
    err = _error(text)
    assert err.fields["key"] == "models[0].preprocess"
    assert err.fields["line"] == 18  # the first line of the preprocess keys
    assert "std values must not be 0" in err.message
    err = _error(text.replace("reconnect.initial_s = 1", "reconnect.initial_s = -1"))
    assert err.fields == {"key": "sources[1].reconnect.initial_s", "line": 13}


def test_pipeline_spec_missing_required_key_is_named_at_its_table() -> None:
    err = _error(GOOD_TOML.replace('url = "rtsp://10.0.0.5/stream"\n', ""))
    assert err.fields == {"key": "sources[0].url", "line": 6}
    assert "Field required" in err.message
    err = _error(GOOD_TOML.replace('kind = "yolo"\n', ""))
    assert err.fields["key"] == "models[0].postprocess.kind"
    assert err.fields["line"] == 16
