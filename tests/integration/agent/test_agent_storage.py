"""A full state directory (a real, small tmpfs): clear errors, nothing torn, events kept in memory."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from edgefleet.agent.errors import AgentStorageError
from edgefleet.agent.fsio import atomic_write_json, read_json
from edgefleet.agent.logbuffer import LogBuffer
from edgefleet.agent.outbox import Outbox
from edgefleet.testing.faults import fill, tmpfs
from edgefleet.testing.require import require

pytestmark = pytest.mark.integration


def test_agent_state_writes_on_a_full_disk_fail_clearly_and_lose_no_event(tmp_path: Path) -> None:
    """Before: the OSError escaped the agent's loop and the agent exited with a traceback."""
    require(os.geteuid() == 0, "root (mounting a tmpfs)")
    with tmpfs(tmp_path / "state", "1m") as state:
        atomic_write_json(state / "state.json", {"v": 1})
        box = Outbox(state / "outbox.json", capacity=10)
        box.put("before")
        filler = fill(state)
        with pytest.raises(AgentStorageError) as err:
            atomic_write_json(state / "state.json", {"v": 2, "pad": "x" * 100_000})
        assert err.value.code == "agent.disk_full"
        assert "no space left" in err.value.message
        assert "state.json" in err.value.message
        assert read_json(state / "state.json") == {"v": 1}  # untouched
        assert sorted(p.name for p in state.iterdir()) == [".filler", "outbox.json", "state.json"]

        for i in range(3):  # no error; queued in memory
            box.put("during", i=i, pad="x" * 10_000)
        assert box.unsaved
        assert [e["kind"] for e in box.peek()] == ["before", "during", "during", "during"]

        filler.unlink()
        box.put("after")  # the next change writes everything
        assert not box.unsaved
        again = Outbox(state / "outbox.json", capacity=10)
        assert [e["kind"] for e in again.peek()] == ["before", "during", "during", "during", "after"]


def test_agent_log_lines_on_a_full_disk_wait_in_memory_and_are_sealed_later(tmp_path: Path) -> None:
    """A batch that cannot be written keeps its lines pending (they were lost before)."""
    require(os.geteuid() == 0, "root (mounting a tmpfs)")
    with tmpfs(tmp_path / "state", "1m") as state:
        buf = LogBuffer(state / "logs", max_pending=100)
        buf.add("before", source="agent")
        assert buf.seal() is not None
        filler = fill(state)
        for i in range(3):
            buf.add(f"during {i} " + "x" * 2000, source="agent")
        with pytest.raises(AgentStorageError) as err:
            buf.seal()
        assert err.value.code == "agent.disk_full"
        assert buf.stats()["lines"] == 4  # one sealed, three pending again
        assert buf.dropped == 0

        filler.unlink()
        buf.add("after", source="agent")
        assert buf.seal() is not None
        lines = [
            json.loads(line)["msg"]
            for b in buf.batches()
            for line in gzip.decompress(b.path.read_bytes()).decode().splitlines()
        ]
        assert [m.split(" ")[0] for m in lines] == ["before", "during", "during", "during", "after"]
