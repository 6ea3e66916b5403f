"""The CLI maps EdgefleetError to its exit code and a one-line message, never a traceback."""

import subprocess
import sys

import pytest

from edgefleet import __version__


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgefleet", *args], capture_output=True, text=True, check=False, env=env
    )


@pytest.mark.unit
def test_version() -> None:
    """--version prints the package version."""
    r = _run("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"edgefleet {__version__}"


@pytest.mark.unit
def test_bad_setting_is_one_line_and_exit_2() -> None:
    """A bad EDGEFLEET_* value exits 2 with a message naming it and no traceback."""
    r = _run("config", env={"EDGEFLEET_LOG_FORMAT": "xml", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2
    assert "EDGEFLEET_LOG_FORMAT" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.unit
def test_config_lists_every_setting() -> None:
    """`edgefleet config` shows each variable."""
    r = _run("config")
    assert r.returncode == 0, r.stderr
    for var in ("EDGEFLEET_DATA_DIR", "EDGEFLEET_LOG_LEVEL", "EDGEFLEET_LOG_FORMAT"):
        assert var in r.stdout


@pytest.mark.unit
def test_error_message_keeps_square_brackets() -> None:
    """Messages are printed literally, not as markup: brackets in a value survive."""
    r = _run("config", env={"EDGEFLEET_LOG_LEVEL": "[loud]", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2
    assert "[loud]" in r.stderr


@pytest.mark.unit
def test_error_stays_on_one_line_in_a_narrow_terminal() -> None:
    """A long error message is one line on stderr, however narrow the terminal (grep sees it whole)."""
    import os

    r = _run("serve", "no-such-model-file-with-a-long-name.onnx", env={**os.environ, "COLUMNS": "40"})
    assert r.returncode == 3
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ")
    assert lines[0].endswith("[runtime.repository_not_found]")
