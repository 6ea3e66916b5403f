"""docs/bundle.md's flow, run exactly as written: ONNX file → signed bundle → verified install."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[3] / "docs" / "bundle.md"
WAIT_FOR_SERVER = (
    'python3 -c "import socket, time\n'
    "for _ in range(200):\n"
    "    try: socket.create_connection(('127.0.0.1', PORT), 0.2).close(); break\n"
    '    except OSError: time.sleep(0.05)"'
)


def _flow() -> str:
    text = DOC.read_text()
    block = text.split("<!-- flow:begin -->", 1)[1].split("<!-- flow:end -->", 1)[0]
    return block.split("```sh\n", 1)[1].rsplit("```", 1)[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.integration
def test_documented_flow_runs(tmp_path: Path) -> None:
    """Every command of the documented flow succeeds; the bundle ends up installed and verified."""
    port = _free_port()
    script = _flow().replace("8000", str(port)).replace("sleep 1", WAIT_FOR_SERVER.replace("PORT", str(port)))
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(tmp_path),
        "COLUMNS": "200",
    }
    wrapped = f"set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{script}"
    r = subprocess.run(
        ["bash", "-c", wrapped],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert r.stdout.count("installed orientation 1.0.0") == 2
    assert "root v2" in r.stdout
    (installed,) = (tmp_path / "store").iterdir()
    assert sorted(p.name for p in installed.iterdir()) == ["bundle.json", "model.onnx"]
    assert "argmax" in (installed / "bundle.json").read_text()


@pytest.mark.integration
def test_build_command_is_reproducible(tmp_path: Path) -> None:
    """Two `edgefleet bundle build` runs with SOURCE_DATE_EPOCH print the same sha256."""
    from tests.unit.bundle.bundle_helpers import tiny_onnx

    model = tiny_onnx(tmp_path / "m.onnx")
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1767225600"}
    shas = []
    for out in ("a.tar", "b.tar"):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "edgefleet",
                "bundle",
                "build",
                str(model),
                "--name",
                "m",
                "--version",
                "1.0.0",
                "-o",
                str(tmp_path / out),
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert r.returncode == 0, r.stderr
        shas.append(next(line for line in r.stdout.splitlines() if line.startswith("sha256")))
    assert shas[0] == shas[1]
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


@pytest.mark.integration
def test_cli_errors_are_one_line_with_the_code(tmp_path: Path) -> None:
    """A refused bundle exits 7 with `[bundle.link]` and no traceback."""
    import tarfile

    from tests.unit.bundle.bundle_helpers import Entry, manifest_entry, manifest_for, write_tar

    tar = write_tar(
        tmp_path / "bad.tar",
        [
            manifest_entry(manifest_for({"m.onnx": b"m"})),
            Entry("m.onnx", b"m"),
            Entry("l", type=tarfile.SYMTYPE, linkname="/etc/shadow"),
        ],
    )
    r = subprocess.run(
        [sys.executable, "-m", "edgefleet", "bundle", "verify", str(tar)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert r.returncode == 7
    assert "[bundle.link]" in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
