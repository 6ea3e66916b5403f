"""What interrupted work leaves in the agent's state directory is removed once updates are done."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefleet.agent.agent import Agent
from edgefleet.agent.config import AgentConfig

pytestmark = pytest.mark.unit

RUNNING, OLD, GONE = "a" * 64, "b" * 64, "c" * 64


def test_agent_gc_removes_interrupted_installs_and_downloads(tmp_path: Path) -> None:
    """A SIGKILL between install and the tar's removal, or mid-install, or mid-removal, left files
    that no later run looked at: they filled the disk a little more at each power cut."""
    agent = Agent(AgentConfig(state_dir=tmp_path))
    agent.state["workloads"]["det"] = {"sha256": RUNNING}
    for sha in (RUNNING, OLD):
        (agent.bundles / sha).mkdir(parents=True)
        (agent.bundles / sha / "bundle.json").write_text("{}")
    (agent.bundles / ".tmp-x1y2").mkdir()  # an install cut short
    (agent.bundles / f".tmp-gc-{GONE}").mkdir()  # a removal cut short
    (agent.bundles / f".tmp-gc-{GONE}" / "model.onnx").write_bytes(b"m")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / f"{RUNNING}.tar").write_bytes(b"t")  # installed, then killed before the unlink
    (downloads / f"{GONE}.tar.part").write_bytes(b"p")  # a download for a release no longer wanted
    agent._gc_bundles()
    assert sorted(p.name for p in agent.bundles.iterdir()) == [RUNNING]
    assert list(downloads.iterdir()) == []
