"""`edgefleet probe` in a real subprocess: JSON that validates, readable sections, path overrides."""

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from edgefleet.testing import fake_devices

SCHEMA = json.loads((Path(__file__).parents[3] / "docs" / "probe.schema.json").read_text())


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgefleet", "probe", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.unit
def test_probe_json_on_this_machine_validates() -> None:
    """`python -m edgefleet probe --json` prints one JSON document that validates against the schema."""
    r = _run("--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, SCHEMA)
    assert doc["schema_version"] == 1


@pytest.mark.unit
def test_probe_table_shows_every_section() -> None:
    """The default output has one block per section."""
    r = _run()
    assert r.returncode == 0, r.stderr
    for title in (
        "Host",
        "CPU",
        "Memory",
        "Kernel",
        "cgroups",
        "Namespaces",
        "Security",
        "Accelerators",
        "Cameras",
    ):
        assert title in r.stdout


@pytest.mark.unit
def test_probe_a_copied_tree_with_root(tmp_path: Path) -> None:
    """--root probes a copied tree: the Pi 5's board and its Hailo appear."""
    fake_devices.raspberry_pi5_hailo8l(tmp_path)
    r = _run("--json", "--root", str(tmp_path))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["host"]["model"] == "Raspberry Pi 5 Model B Rev 1.0"
    assert [d["pci_id"] for d in doc["accelerators"]["devices"]] == ["1e60:2864"]
    r = _run("--root", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "Hailo-8/8L" in r.stdout


@pytest.mark.unit
def test_probe_bad_root_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """A --root that is not a directory exits 2 naming the option, without a traceback."""
    r = _run("--root", str(tmp_path / "missing"))
    assert r.returncode == 2
    assert "--root" in r.stderr
    assert "probe.bad_root" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.unit
def test_probe_schema_option_prints_the_schema() -> None:
    """--schema prints the published schema."""
    r = _run("--schema")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == SCHEMA
