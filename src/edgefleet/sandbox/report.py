"""How a sandboxed run ended: :class:`RunReport`, built from the wait status and the cgroup."""

from __future__ import annotations

import os
import signal
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from edgefleet.sandbox.cgroups.base import Unenforced, Usage

__all__ = ["ExitReason", "RunReport", "exit_reason"]

ExitReason = Literal["exited", "signaled", "oom", "stopped", "probe_failed", "start_failed", "lost"]


def exit_reason(status: int | None, usage: Usage, stopped: bool) -> ExitReason:
    """``oom`` when the kernel's OOM killer fired in the group and the workload died of SIGKILL."""
    if status is None:
        return "lost"
    if os.WIFSIGNALED(status):
        if os.WTERMSIG(status) == signal.SIGKILL and usage.oom_kills:
            return "oom"
        return "stopped" if stopped else "signaled"
    return "stopped" if stopped else "exited"


@dataclass
class RunReport:
    """The outcome of one run: exit code or signal, why it ended, limits hit and what it used."""

    name: str
    backend: str
    argv: list[str]
    reason: ExitReason
    exit_code: int | None
    signal: int | None
    signal_name: str | None
    oom_killed: bool
    limits_hit: list[str]
    duration_s: float
    usage: Usage
    cgroup_version: int | None
    applied: dict[str, str] = field(default_factory=dict)
    unenforced: list[Unenforced] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @classmethod
    def from_status(
        cls,
        *,
        name: str,
        backend: str,
        argv: list[str],
        status: int | None,
        usage: Usage,
        duration_s: float,
        cgroup_version: int | None,
        stopped: bool = False,
        applied: dict[str, str] | None = None,
        unenforced: list[Unenforced] | None = None,
        notes: list[str] | None = None,
    ) -> RunReport:
        reason = exit_reason(status, usage, stopped)
        code = os.WEXITSTATUS(status) if status is not None and os.WIFEXITED(status) else None
        sig = os.WTERMSIG(status) if status is not None and os.WIFSIGNALED(status) else None
        return cls(
            name=name,
            backend=backend,
            argv=argv,
            reason=reason,
            exit_code=code,
            signal=sig,
            signal_name=signal.Signals(sig).name if sig else None,
            oom_killed=reason == "oom",
            limits_hit=usage.limits_hit(),
            duration_s=duration_s,
            usage=usage,
            cgroup_version=cgroup_version,
            applied=dict(applied or {}),
            unenforced=list(unenforced or []),
            notes=list(notes or []),
        )

    def shell_code(self) -> int:
        """The exit code a shell would show: the code, or 128 + the signal."""
        if self.exit_code is not None:
            return self.exit_code
        if self.signal is not None:
            return 128 + self.signal
        return 125

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
