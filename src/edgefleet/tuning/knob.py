"""The contract every knob plugin follows: read current → plan → apply → verify → rollback.

A profile line is a :class:`Setting`. A knob turns it into :class:`Step` s (one per file it would
write: one sysctl, each CPU policy, each IRQ...), reading the current value as it plans. The engine
persists each step's ``original`` before the first write, then calls :meth:`Knob.apply`; verify and
rollback work from the same steps, so a second knob type is one new file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from edgefleet.tuning.values import Target

__all__ = ["Action", "Check", "Knob", "Setting", "Step", "Verdict"]

# set: will be written · ok: already at target · keep: a >N/<N modifier leaves it ·
# unsupported: this kernel/board has no such knob (not a failure) · advice: boot-time, never written ·
# hold: held open by a process (PM QoS), nothing written to a file
Action = Literal["set", "ok", "keep", "unsupported", "advice", "hold"]
Verdict = Literal["passed", "failed", "skipped", "advice"]


@dataclass(frozen=True)
class Setting:
    """One knob line of a profile, with where it came from."""

    knob: str  # plugin: sysctl, sysfs, cpu, vm, irq, pm_qos, boot
    name: str  # within the plugin: "vm.swappiness", "/sys/block/*/queue/read_ahead_kb", "governor"
    value: str  # raw, with tuned's modifiers
    comment: str
    target: Target
    source: Path
    line: int

    @property
    def label(self) -> str:
        return f"{self.knob}:{self.name}"


@dataclass(frozen=True)
class Step:
    """What applying one setting does to one file (or device), as planned against current values."""

    setting: Setting
    key: str  # what is written: an absolute path, or a device for holds
    current: str | None  # as shown to people (THP: the bracketed choice); None: absent
    target: str | None  # the value to write; None when nothing is written
    action: Action
    original: str | None = None  # exact text to write back on rollback
    needs_reboot: bool = False
    note: str = ""
    best_effort: bool = False  # a refused write is reported, not rolled back (managed IRQs)
    accept: tuple[str, ...] = field(default=())  # extra values verify accepts (kernel aliases)

    @property
    def writes(self) -> bool:
        return self.action == "set"


@dataclass(frozen=True)
class Check:
    """The result of verifying one step."""

    step: Step
    verdict: Verdict
    current: str | None
    detail: str = ""


class Knob(Protocol):
    """A plugin that owns one kind of kernel setting."""

    kind: str

    def validate(self, setting: Setting) -> str | None:
        """Why this setting can never work (unknown name, malformed value, bad path), or None."""
        ...

    def read(self, key: str) -> str | None:
        """The current value at ``key`` as verify compares it (THP: the bracketed choice), or None."""
        ...

    def plan(self, setting: Setting) -> list[Step]:
        """Read the current values and decide what applying ``setting`` would do."""
        ...

    def apply(self, step: Step) -> None:
        """Make the change of one planned ``set`` step; raises ``OSError`` when the kernel refuses."""
        ...

    def verify(self, step: Step) -> Check:
        """Re-read the value and compare it with the target by tuned's rules."""
        ...

    def rollback(self, key: str, original: str) -> None:
        """Write ``original`` (as saved in the journal) back; raises ``OSError`` when refused."""
        ...
