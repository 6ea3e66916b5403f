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


def test_agent_notices_a_changed_manifest_of_a_stored_bundle(tmp_path: Path) -> None:
    """The store's check hashes the files listed in bundle.json, not bundle.json itself: a changed
    byte there (say a model input's dtype) went unnoticed. Its digest is recorded with the workload."""
    agent = Agent(AgentConfig(state_dir=tmp_path))
    manifest = agent.bundles / RUNNING / "bundle.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text('{"dtype": "float32"}')
    agent.state["workloads"]["det"] = {"sha256": RUNNING, "manifest_sha256": agent._manifest_digest(RUNNING)}
    manifest.write_text('{"dtype": "flort32"}')
    reason = agent._damaged(RUNNING)
    assert reason is not None
    assert "bundle.json has sha256" in reason
    assert reason.endswith("[bundle.hash_mismatch]")
