"""The knob plugins, in the order a profile is applied (sysctls first, holds and advice last)."""

from __future__ import annotations

from edgefleet.tuning.knob import Knob
from edgefleet.tuning.knobs.boot import BootKnob
from edgefleet.tuning.knobs.cpu import CpuKnob
from edgefleet.tuning.knobs.irq import IrqKnob
from edgefleet.tuning.knobs.pm_qos import LatencyHold, PmQosKnob
from edgefleet.tuning.knobs.sysctl import SysctlKnob
from edgefleet.tuning.knobs.sysfs import SysfsKnob
from edgefleet.tuning.knobs.vm import VmKnob
from edgefleet.tuning.roots import Roots

__all__ = ["KINDS", "LatencyHold", "PmQosKnob", "default_knobs"]

KINDS = ("sysctl", "vm", "sysfs", "cpu", "irq", "pm_qos", "boot")


def default_knobs(roots: Roots) -> dict[str, Knob]:
    """Every built-in knob plugin, keyed by the profile section it reads."""
    knobs: list[Knob] = [
        SysctlKnob(roots),
        VmKnob(roots),
        SysfsKnob(roots),
        CpuKnob(roots),
        IrqKnob(roots),
        PmQosKnob(roots),
        BootKnob(roots),
    ]
    return {k.kind: k for k in knobs}
