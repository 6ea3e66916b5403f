"""The side-by-side serving benchmark (`make bench`): one quick pass over PP-LCNet with every peer.

A measurement, not a timed assertion: it checks that each serving path produced figures (or a
stated reason), and leaves the table in bench/serve/results/serve.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.bench
def test_bench_serve_quick_pp_lcnet() -> None:
    """Raw ORT, MLServer, PyTriton (and edgefleet serve when present) all measured or explained."""
    out = ROOT / "bench" / "serve" / "results" / "serve-pytest.json"
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "serve" / "run.py"), "--quick", "--models", "pp-lcnet",
         "--json-out", str(out)],
        capture_output=True, text=True, check=False, timeout=1200,
    )  # fmt: skip
    print(r.stdout)  # noqa: T201 - `make bench` runs pytest -s to show the table
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    for row in rows:
        assert row["results"] or row["note"], row
    measured = {row["path"] for row in rows if row["results"]}
    assert {"raw ORT", "MLServer 1.7.1", "PyTriton 0.7.0"} <= measured
