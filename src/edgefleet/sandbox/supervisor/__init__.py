"""The workload supervisor: restart policies, probes, usage, logs, adoption after a restart."""

from __future__ import annotations

from edgefleet.sandbox.supervisor.policy import RestartPolicy
from edgefleet.sandbox.supervisor.probes import Probe, run_probe
from edgefleet.sandbox.supervisor.supervisor import Supervisor, Workload, WorkloadState, WorkloadStatus

__all__ = ["Probe", "RestartPolicy", "Supervisor", "Workload", "WorkloadState", "WorkloadStatus", "run_probe"]
