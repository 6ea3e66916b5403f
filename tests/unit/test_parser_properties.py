# ruff: noqa: PT017 - a property: the input may parse or be refused, so pytest.raises does not fit
"""Property-based fuzzing of the parsers that read outside input: the bundle manifest, pipeline specs,
tuning profiles and the agent's desired-state document. Whatever the input, the answer is the parsed
value or an edgefleet error that names the field (or line); never another exception.
EDGEFLEET_SECURITY_FULL=1 runs 20x the examples.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgefleet.agent.desired import check_desired
from edgefleet.bundle.manifest import parse_manifest
from edgefleet.errors import EdgefleetError
from edgefleet.pipeline.specfile import parse_spec
from edgefleet.tuning.profile import parse_profile_text
from tests.unit.bundle.bundle_helpers import manifest_for
from tests.unit.pipeline.test_pipeline_spec import GOOD_TOML

pytestmark = pytest.mark.unit

FULL = os.environ.get("EDGEFLEET_SECURITY_FULL") == "1"
PROPS = settings(
    max_examples=2000 if FULL else 100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in a JSON-like document."""
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    doc = json.loads(json.dumps(doc))
    cur = doc
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return doc


def _mutants(valid: Any) -> st.SearchStrategy[Any]:
    paths = _paths(valid)
    return st.tuples(st.sampled_from(paths), json_values).map(lambda pv: _replace(valid, *pv))


def _names_a_field(exc: EdgefleetError) -> bool:
    return bool({"field", "line", "key", "path"} & set(exc.fields)) or ":" in exc.message


# -- bundle.json -------------------------------------------------------------------------------

MANIFEST = manifest_for({"m.onnx": b"x", "labels.txt": b"a\nb\n"}, model="m.onnx")


@PROPS
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_manifest_parser_never_raises_anything_else(data: bytes) -> None:
    try:
        parse_manifest(data)
    except EdgefleetError as exc:
        assert exc.code == "bundle.manifest_invalid"
        assert _names_a_field(exc)


@PROPS
@given(_mutants(MANIFEST))
def test_manifest_with_one_field_changed_is_parsed_or_refused_naming_it(doc: Any) -> None:
    try:
        parse_manifest(json.dumps(doc).encode())
    except EdgefleetError as exc:
        assert exc.fields.get("field"), exc.message


# -- pipeline specs ----------------------------------------------------------------------------

SPEC = tomllib.loads(GOOD_TOML)


def _inline(v: Any) -> str:
    """One TOML value (inline tables and arrays); ValueError for null, which TOML cannot hold."""
    if v is None:
        raise ValueError("null")
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float | str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_inline(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_inline(x)}" for k, x in v.items()) + "}"


def _toml(doc: dict[str, Any]) -> str | None:
    """A profile document as TOML text: top-level keys first, then one table per section."""
    try:
        top = [f"{json.dumps(k)} = {_inline(v)}" for k, v in doc.items() if not isinstance(v, dict)]
        tables = [
            f"[{json.dumps(k)}]\n" + "\n".join(f"{json.dumps(n)} = {_inline(x)}" for n, x in v.items())
            for k, v in doc.items()
            if isinstance(v, dict)
        ]
    except ValueError:
        return None
    return "\n".join(top) + "\n\n" + "\n\n".join(tables) + "\n"


@PROPS
@given(st.text(max_size=300), st.sampled_from(["toml", "yaml"]))
def test_spec_parser_on_any_text_gives_a_spec_error(text: str, fmt: str) -> None:
    try:
        parse_spec(text, fmt=fmt)
    except EdgefleetError as exc:
        assert exc.message


@PROPS
@given(_mutants(SPEC))
def test_spec_with_one_field_changed_is_parsed_or_refused_naming_it(doc: Any) -> None:
    """Through YAML (a superset of JSON), so every JSON value can be written."""
    try:
        parse_spec(json.dumps(doc), fmt="yaml", origin="spec.yaml")
    except EdgefleetError as exc:
        assert exc.code.startswith("pipeline."), exc.code
        assert _names_a_field(exc), exc.message


# -- tuning profiles ---------------------------------------------------------------------------

PROFILE_DIR = Path(__file__).resolve().parents[2] / "src" / "edgefleet" / "tuning" / "profiles"
PROFILE = tomllib.loads((PROFILE_DIR / "edge-latency.toml").read_text())


@PROPS
@given(st.text(max_size=300))
def test_profile_parser_on_any_text_gives_a_profile_error(text: str) -> None:
    try:
        parse_profile_text(text, Path("p.toml"))
    except EdgefleetError as exc:
        assert exc.code == "tune.profile_invalid"


def test_the_profile_writer_round_trips() -> None:
    text = _toml(PROFILE)
    assert text is not None
    assert tomllib.loads(text) == PROFILE


@PROPS
@given(_mutants(PROFILE))
def test_profile_with_one_field_changed_is_parsed_or_refused_naming_its_line(doc: Any) -> None:
    text = _toml(doc)
    if text is None:  # a value TOML cannot hold (null): not a profile anyone can write
        return
    try:
        parse_profile_text(text, Path("p.toml"))
    except EdgefleetError as exc:
        assert exc.code == "tune.profile_invalid"
        assert exc.fields.get("line") is not None, exc.message


# -- desired state (agent) ---------------------------------------------------------------------

DESIRED = {
    "type": "edgefleet-desired-state",
    "version": 1,
    "device": "dev_0123456789abcdef",
    "project": "default",
    "revision": 3,
    "issued_at": "2026-01-01T00:00:00Z",
    "expires_at": "2026-01-08T00:00:00Z",
    "labels": {"site": "lab"},
    "workloads": [
        {
            "deployment": "det",
            "deployment_id": "dep_1",
            "release": "rel_1",
            "release_number": 1,
            "bundle": {"name": "det", "version": "1.0.0", "sha256": "a" * 64, "size": 10,
                       "url": "/device/v1/blobs/" + "a" * 64, "manifest": {}, "targets": {}},
            "resources": {"cpus": 1.5, "memory": "256M", "pids": 64, "cpuset": "0-1"},
            "serving": {},
            "pipeline": {},
            "tuning_profile": None,
        }
    ],
    "tuning_profile": None,
}  # fmt: skip


def test_a_real_desired_state_passes() -> None:
    assert check_desired(DESIRED) is DESIRED


@PROPS
@given(json_values | _mutants(DESIRED))
def test_desired_state_is_used_whole_or_refused_naming_the_field(doc: Any) -> None:
    try:
        checked = check_desired(doc)
    except EdgefleetError as exc:
        assert exc.code == "agent.bad_desired_state"
        assert exc.fields["field"] in exc.message
        return
    # what passes is safe for every use the agent makes of it
    int(checked["revision"])
    for w in checked.get("workloads", []):
        int(w["bundle"]["size"])
        bytes.fromhex(w["bundle"]["sha256"])
        f"{w['deployment']}-{w['release']}".encode()


# -- KServe v2 REST infer bodies (edgefleet serve) -----------------------------------------------

INFER = {
    "id": "r1",
    "inputs": [
        {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]},
        {"name": "b", "shape": [2], "datatype": "INT64", "parameters": {"binary_data_size": 16}},
    ],
    "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
}


@PROPS
@given(
    st.one_of(st.binary(max_size=200), _mutants(INFER).map(lambda d: json.dumps(d).encode())),
    st.binary(max_size=32),
    st.none() | st.integers(min_value=-5, max_value=400),
)
def test_infer_body_decoder_gives_a_request_or_a_request_error(
    header: bytes, tail: bytes, header_length: int | None
) -> None:
    from edgefleet.serving.rest import decode_request

    body = header + tail
    if header_length == 0:
        header_length = len(header)
    try:
        decode_request("m", "", body, header_length)
    except EdgefleetError as exc:
        assert exc.http_status == 400, (exc.code, exc.http_status)
        assert exc.message
