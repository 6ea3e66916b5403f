"""Public test doubles and helpers for code built on edgefleet.

They imitate the *outer* protocol of what cannot run on a developer's machine (a sysfs tree of a
Jetson, a camera's ioctl answers, a fleet of devices), never an internal function of edgefleet.

- :func:`edgefleet.testing.require.require`: skip a test when a system component is missing, or fail
  it when ``EDGEFLEET_REQUIRE_ALL=1`` (CI), so a green run never hides a skipped real test.
- :mod:`edgefleet.testing.pytest_plugin`: the pytest plugin that enforces the same rule for every skip.
- :class:`FleetSimulator` (:mod:`edgefleet.testing.fleet`): N virtual devices against a real control plane.
"""

from typing import Any

__all__ = ["FleetSimulator", "SimulatorConfig"]


def __getattr__(name: str) -> Any:
    # The simulator needs httpx and cryptography (the server/agent extras): load it only when asked for.
    if name in __all__:
        from edgefleet.testing import fleet

        return getattr(fleet, name)
    raise AttributeError(name)
