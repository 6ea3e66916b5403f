"""Skip-or-fail for tests that need a real system component (PostgreSQL, podman, Chromium...)."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

__all__ = ["REQUIRE_ALL_ENV", "missing", "require", "require_all_enabled", "require_tool"]

REQUIRE_ALL_ENV = "EDGEFLEET_REQUIRE_ALL"


def require_all_enabled() -> bool:
    """True when ``EDGEFLEET_REQUIRE_ALL=1``: a missing component is a failure, not a skip."""
    return os.environ.get(REQUIRE_ALL_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def missing(what: str) -> NoReturn:
    """Stop the current test because ``what`` is not available: skip it, or fail it in CI."""
    reason = f"requires {what}"
    if require_all_enabled():
        pytest.fail(f"{reason} ({REQUIRE_ALL_ENV}=1 forbids skipping)", pytrace=False)
    pytest.skip(reason)


def require(condition: object, what: str) -> None:
    """Continue only when ``condition`` is true; otherwise :func:`missing`."""
    if not condition:
        missing(what)


def require_tool(name: str) -> str:
    """The full path of an executable on PATH, or :func:`missing`."""
    path = shutil.which(name)
    if path is None:
        missing(f"the '{name}' executable on PATH")
    return path
