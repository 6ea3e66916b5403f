"""The published JSON Schema is the one the code produces, and every fixture's JSON validates against it."""

import json
from pathlib import Path

import jsonschema
import pytest

from edgefleet.probe.inventory import SCHEMA_VERSION, collect, inventory_schema
from edgefleet.testing import fake_devices

SCHEMA_FILE = Path(__file__).parents[3] / "docs" / "probe.schema.json"


@pytest.mark.unit
def test_published_schema_is_current() -> None:
    """docs/probe.schema.json equals `edgefleet probe --schema` (regenerate it when models change)."""
    assert json.loads(SCHEMA_FILE.read_text()) == inventory_schema()


@pytest.mark.unit
def test_schema_is_valid_and_versioned() -> None:
    """The schema is valid Draft 2020-12 and pins schema_version."""
    schema = inventory_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    assert "schema_version" in schema["required"]


@pytest.mark.unit
@pytest.mark.parametrize(
    "build",
    [
        fake_devices.jetson_orin_nano,
        fake_devices.raspberry_pi5_hailo8l,
        fake_devices.x86_intel_npu_uvc,
        fake_devices.rk3588_cgroup_v1,
    ],
)
def test_fixture_json_validates(build: object, tmp_path: Path) -> None:
    """The --json output of each imitated machine validates against the schema."""
    inventory = collect(build(tmp_path).probe_paths())  # type: ignore[operator]
    jsonschema.validate(json.loads(inventory.model_dump_json()), inventory_schema())


@pytest.mark.unit
def test_schema_rejects_a_wrong_version(tmp_path: Path) -> None:
    """A document claiming another schema_version does not validate."""
    doc = json.loads(collect(fake_devices.raspberry_pi5_hailo8l(tmp_path).probe_paths()).model_dump_json())
    doc["schema_version"] = 2
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, inventory_schema())
