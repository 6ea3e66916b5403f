"""`edgefleet down`: stop what `up` started, in reverse order, and leave nothing behind.

The agent leaves its sandboxed workloads running when it stops (so that a restarted agent adopts
them); `down` therefore stops them itself once the agent is gone, through the same supervisor
directory, then removes every cgroup under this directory's cgroup parent.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from edgefleet.errors import EdgefleetError
from edgefleet.up.layout import UpLayout, exclusive
from edgefleet.up.procs import ProcessTable
from edgefleet.up.progress import Progress, Silent

__all__ = ["bring_down", "stop_all", "stop_workloads"]


def stop_all(
    layout: UpLayout, procs: ProcessTable, *, only: set[str] | None, progress: Progress | None = None
) -> list[str]:
    """Stop the processes (all, or ``only`` those) in reverse start order, and the agent's sandboxed
    workloads and their cgroups once the agent is stopped (nobody restarts them then)."""
    stopped: list[str] = []
    progress = progress or Silent()

    def stop(name: str) -> None:
        if (only is None or name in only) and procs.stop(name, timeout=15.0):
            stopped.append(name)
            progress.note(f"stopped {name}")

    for name in ("pipeline", "simulator", "agent"):
        stop(name)
    if only is None or "agent" in only:
        for workload in stop_workloads(layout):
            stopped.append(workload)
            progress.note(f"stopped {workload}")
    stop("server")
    return stopped


def stop_workloads(layout: UpLayout) -> list[str]:
    """Stop every sandboxed workload of the agent's supervisor and remove its cgroups."""
    stopped: list[str] = []
    sup_dir = layout.agent_dir / "supervisor"
    parent = layout.instance
    if sup_dir.is_dir():
        from edgefleet.sandbox.supervisor import Supervisor

        sup = Supervisor(sup_dir, parent=parent)
        stopped = [f"workload {st.name}" for st in sup.statuses() if st.state == "running"]
        sup.close(stop_workloads=True)
    try:
        from edgefleet.sandbox.cgroups import detect_driver

        driver = detect_driver(parent)
    except (EdgefleetError, OSError):
        return stopped  # no cgroups on this machine: nothing was sandboxed
    for name in driver.names():
        group = driver.open(name)
        if group is not None:
            with contextlib.suppress(EdgefleetError, OSError):  # gone meanwhile
                driver.kill(group)
                driver.remove(group)
    driver.prune()
    return stopped


def bring_down(root: Path, *, purge: bool = False, progress: Progress | None = None) -> list[str]:
    """Stop everything `up` started from ``root``; with ``purge`` remove the directory too."""
    layout = UpLayout(root)
    if not layout.root.exists():
        return []
    procs = ProcessTable(layout.run_dir, layout.log_dir)
    with exclusive(layout):
        stopped = stop_all(layout, procs, only=None, progress=progress)
    if purge:
        shutil.rmtree(layout.root)
    return stopped
