"""Fault-injection fixtures: the agent suite's real server and agents, plus the fault helpers.

Trial counts follow ``EDGEFLEET_FAULT_TRIALS`` (quick by default; ``make faults`` runs the full
counts and writes results to ``tests/faults/results/``), see :mod:`edgefleet.testing.faults`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.integration.agent.conftest import agents, fleet

__all__ = ["agents", "fleet", "sandboxes", "state_of"]


def state_of(agent_state: Path) -> dict[str, Any]:
    """The agent's ``state.json`` as it is on disk (what survives a SIGKILL)."""
    return dict(json.loads((agent_state / "state.json").read_text()))


def sandboxes(agent_state: Path, prefix: str) -> list[str]:
    """Names of the sandboxes the agent's supervisor directory knows about."""
    from edgefleet.sandbox.supervisor import Supervisor

    sup = Supervisor(agent_state / "supervisor", parent=prefix)
    try:
        return sorted(st.name for st in sup.statuses())
    finally:
        sup.close()
