"""Every rejection code is listed in one table, raised only from it, and documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgefleet.bundle.errors import CODES
from edgefleet.errors import EdgefleetError

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "bundle.md"


@pytest.mark.unit
def test_codes_are_namespaced_and_carried_by_edgefleet_errors() -> None:
    for code, (cls, reason) in CODES.items():
        assert code.startswith(("bundle.", "keys.")), code
        assert issubclass(cls, EdgefleetError), code
        assert reason, code
        assert "\n" not in reason, code


@pytest.mark.unit
def test_every_code_is_documented() -> None:
    """docs/bundle.md's table lists every code of edgefleet.bundle.errors.CODES with its reason."""
    text = DOC.read_text()
    for code, (cls, reason) in CODES.items():
        assert f"| `{code}` | {cls.__name__} |" in text, code
        assert reason in text, code


@pytest.mark.unit
def test_every_raised_code_is_listed() -> None:
    """No module raises a code that CODES (and therefore the docs) does not list."""
    src = ROOT / "src" / "edgefleet"
    used = set()
    for path in [*(src / "bundle").glob("*.py"), src / "cli" / "bundle.py", src / "cli" / "keys.py"]:
        used |= set(re.findall(r'code="([a-z_.]+)"', path.read_text()))
        used |= set(re.findall(r'_reject\(\s*"([a-z_.]+)"', path.read_text()))
    assert used, "the pattern finds the codes"
    assert used <= set(CODES), used - set(CODES)
