"""bundle.json validation and its published JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgefleet.bundle.errors import BundleError, BundleInputError
from edgefleet.bundle.manifest import BundleManifest, check_relative_path, json_schema, parse_manifest

from .bundle_helpers import manifest_for

DOCS = Path(__file__).resolve().parents[3] / "docs"


def _body(**changes: object) -> dict[str, object]:
    body = manifest_for({"m.onnx": b"x", "labels.txt": b"a\nb\n"}, model="m.onnx")
    body.update(changes)
    return body


@pytest.mark.unit
def test_valid_manifest_round_trips_through_canonical_bytes() -> None:
    """canonical_bytes() parses back to an equal manifest, with sorted keys and a final newline."""
    m = BundleManifest.model_validate(_body())
    data = m.canonical_bytes()
    assert data.endswith(b"}\n")
    assert parse_manifest(data) == m
    assert list(json.loads(data)) == sorted(json.loads(data))


@pytest.mark.unit
@pytest.mark.parametrize("version", ["1.0", "01.0.0", "1.0.0-", "v1.0.0", "1.0.0+", "1.2.3.4", ""])
def test_bad_semver_is_refused(version: str) -> None:
    """Versions that are not semver.org 2.0.0 are refused with the field named."""
    with pytest.raises(BundleError, match="version") as err:
        parse_manifest(json.dumps(_body(version=version)).encode())
    assert err.value.code == "bundle.manifest_invalid"


@pytest.mark.unit
@pytest.mark.parametrize("version", ["0.0.1", "1.2.3", "2.0.0-rc.1", "1.0.0-alpha+build.5", "10.20.30+meta"])
def test_good_semver_is_accepted(version: str) -> None:
    assert BundleManifest.model_validate(_body(version=version)).version == version


@pytest.mark.unit
@pytest.mark.parametrize("name", ["Upper", "-lead", "with space", "a" * 65, ""])
def test_bad_name_is_refused(name: str) -> None:
    with pytest.raises(BundleInputError, match="name"):
        parse_manifest(json.dumps(_body(name=name)).encode(), for_build=True)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/etc/passwd", "bundle.path_absolute"),
        ("../x", "bundle.path_traversal"),
        ("a/../b", "bundle.path_traversal"),
        ("a//b", "bundle.path_traversal"),
        ("./a", "bundle.path_traversal"),
        ("a\\b", "bundle.path_traversal"),
        ("a\x00b", "bundle.path_traversal"),
        ("x" * 256, "bundle.path_traversal"),
        ("models/m.onnx", None),
    ],
)
def test_relative_path_rules(path: str, code: str | None) -> None:
    assert check_relative_path(path) == code


@pytest.mark.unit
def test_files_must_be_sorted_unique_and_contain_the_model() -> None:
    body = _body()
    files = body["files"]
    assert isinstance(files, list)
    with pytest.raises(BundleError, match="sorted"):
        parse_manifest(json.dumps({**body, "files": list(reversed(files))}).encode())
    with pytest.raises(BundleError, match="twice"):
        parse_manifest(json.dumps({**body, "files": [files[0], files[0]]}).encode())
    with pytest.raises(BundleError, match=r"model\.path"):
        parse_manifest(json.dumps({**body, "model": {"path": "other.onnx", "format": "onnx"}}).encode())


@pytest.mark.unit
def test_a_file_cannot_also_be_a_directory() -> None:
    body = manifest_for({"a": b"1", "a/b": b"2"}, model="a/b")
    with pytest.raises(BundleError, match="directory"):
        parse_manifest(json.dumps(body).encode())


@pytest.mark.unit
def test_unknown_fields_and_schema_versions_are_refused() -> None:
    with pytest.raises(BundleError, match=r"(?i)extra"):
        parse_manifest(json.dumps(_body(surprise=1)).encode())
    with pytest.raises(BundleError, match="schema_version"):
        parse_manifest(json.dumps(_body(schema_version=2)).encode())


@pytest.mark.unit
def test_processing_steps_are_validated() -> None:
    ok = _body(processing={"pre": [{"op": "resize", "args": {"width": 224, "height": 224}}]})
    assert BundleManifest.model_validate(ok).processing.pre[0].args["width"] == 224
    with pytest.raises(BundleError, match="op"):
        parse_manifest(json.dumps(_body(processing={"pre": [{"op": "bad op!"}]})).encode())


@pytest.mark.unit
def test_published_schema_matches_the_models() -> None:
    """docs/bundle.schema.json is exactly what `edgefleet bundle schema` prints."""
    published = json.loads((DOCS / "bundle.schema.json").read_text())
    assert published == json_schema()
