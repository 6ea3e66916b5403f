"""pytest plugin: under ``EDGEFLEET_REQUIRE_ALL=1`` any skipped test fails.

A test may still skip there only when it carries ``@pytest.mark.hardware`` (it needs a GPU, an
NPU or a camera, which no CI machine has). Enabled for edgefleet's own suite in ``pyproject.toml``
with ``-p edgefleet.testing.pytest_plugin``.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from edgefleet.testing.require import REQUIRE_ALL_ENV, require_all_enabled


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """Turn a skip into a failure when every component is required and the test is not hardware-bound."""
    del call
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and not hasattr(report, "wasxfail")
        and require_all_enabled()
        and item.get_closest_marker("hardware") is None
    ):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"skipped under {REQUIRE_ALL_ENV}=1, which forbids skips: {reason}"
