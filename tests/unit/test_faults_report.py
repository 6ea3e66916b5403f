"""The trial recorder's results files and the reliability report made from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgefleet.errors import InvalidInputError
from edgefleet.testing.faults import RESULTS_ENV, TRIALS_ENV, Trials, trial_count
from edgefleet.testing.reliability import load_results, main, render

pytestmark = pytest.mark.unit


def test_trial_counts_follow_the_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRIALS_ENV, raising=False)
    assert trial_count(quick=3, full=100) == 3
    monkeypatch.setenv(TRIALS_ENV, "full")
    assert trial_count(quick=3, full=100) == 100
    monkeypatch.setenv(TRIALS_ENV, "7")
    assert trial_count(quick=3, full=100) == 7
    monkeypatch.setenv(TRIALS_ENV, "lots")
    with pytest.raises(InvalidInputError, match=TRIALS_ENV):
        trial_count(quick=3, full=100)


def test_trials_write_the_documented_shape_even_when_a_trial_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path))

    def run() -> None:
        with Trials("disk: full!", planned=3, notes="n", seed=5) as trials:
            for i in range(3):
                with trials.trial() as t:
                    t.measure("gap_s", i)
                    assert i < 2, "third one breaks"
                    t.outcome = "ok"

    with pytest.raises(AssertionError):
        run()
    data = json.loads((tmp_path / "disk-full.json").read_text())
    assert data["trials"] == 3
    assert data["outcomes"] == {"failed: AssertionError: third one breaks": 1, "ok": 2}
    assert data["failed"] == 1
    assert data["seed"] == 5
    assert data["measurements"]["gap_s"] == {"n": 3, "min": 0, "median": 1, "p95": 2, "max": 2}
    assert load_results([tmp_path])[0]["name"] == "disk: full!"


def _write(path: Path, **over: object) -> Path:
    base = {
        "name": "x",
        "kind": "attack",
        "trials": 2,
        "outcomes": {"refused": 2},
        "data_lost": 0,
        "notes": "",
    }
    path.write_text(json.dumps(base | over))
    return path


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"kind": "oops"}, "kind"),
        ({"trials": -1}, "trials"),
        ({"outcomes": {"refused": 1}}, "outcomes"),
        ({"data_lost": "none"}, "data_lost"),
        ({"name": ""}, "name"),
        ({"measurements": {"m": {"n": 1}}}, "measurements"),
    ],
)
def test_report_refuses_a_results_file_of_another_shape(
    tmp_path: Path, over: dict[str, object], field: str
) -> None:
    bad = _write(tmp_path / "bad.json", **over)
    with pytest.raises(InvalidInputError) as err:
        load_results([bad])
    assert str(bad) in err.value.message
    assert repr(field) in err.value.message


def test_report_has_a_row_per_file_and_the_cli_writes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path / "a.json", name="replayed metadata")
    _write(tmp_path / "b.json", name="agent SIGKILL", kind="fault", trials=0, outcomes={}, notes="not run: x")
    text = render(load_results([tmp_path]), command="make faults")
    assert "| agent SIGKILL | fault | 0 | not run (see below) | 0 |" in text
    assert "| replayed metadata | attack | 2 | 2 x refused | 0 |" in text
    assert text.index("agent SIGKILL") < text.index("replayed metadata")  # faults first
    out = tmp_path / "r.md"
    assert main([str(tmp_path), "-o", str(out)]) == 0
    assert out.read_text() == text
    _write(tmp_path / "c.json", trials="2")
    assert main([str(tmp_path), "-o", str(out)]) == 2
    assert "'trials' must be an integer" in capsys.readouterr().err
    assert out.read_text() == text  # unchanged
