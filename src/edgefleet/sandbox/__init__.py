"""Isolated workloads with real resource limits: cgroup drivers, namespaces, the podman backend.

The native backend (:class:`Sandbox`) runs a command in its own cgroup and in new mount, PID, IPC,
UTS (and network) namespaces, as an unprivileged user with no capabilities and no_new_privs.
"""

from __future__ import annotations

from edgefleet.sandbox.cgroups import CgroupDriver, Group, Unenforced, Usage, detect_driver
from edgefleet.sandbox.launcher import Sandbox, SandboxProcess
from edgefleet.sandbox.limits import Limits
from edgefleet.sandbox.report import RunReport
from edgefleet.sandbox.spec import Isolation, SandboxSpec, UserId, resolve_user

__all__ = [
    "CgroupDriver",
    "Group",
    "Isolation",
    "Limits",
    "RunReport",
    "Sandbox",
    "SandboxProcess",
    "SandboxSpec",
    "Unenforced",
    "Usage",
    "UserId",
    "detect_driver",
    "resolve_user",
]
