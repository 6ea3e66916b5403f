"""``[boot]``: kernel command-line items (isolcpus, nohz_full...): reported as "needs reboot", never written.

Changing the command line means the bootloader (GRUB, BLS, U-Boot's extlinux.conf, a Jetson's
extlinux or a Pi's cmdline.txt), which differs per board and cannot be rolled back by writing a
file back while the kernel runs; so edgefleet only says what is missing.
"""

from __future__ import annotations

import re

from edgefleet.tuning.knob import Check, Setting, Step
from edgefleet.tuning.roots import Roots, read_file
from edgefleet.tuning.values import parse_cpulist

__all__ = ["BootKnob"]

_CPULIST_ITEMS = {"isolcpus", "nohz_full", "rcu_nocbs", "irqaffinity"}
_OTHER_ITEMS = {
    "skew_tick",
    "nosoftlockup",
    "tsc",
    "intel_pstate",
    "amd_pstate",
    "processor.max_cstate",
    "intel_idle.max_cstate",
    "idle",
    "transparent_hugepage",
    "rcupdate.rcu_normal_after_boot",
    "mitigations",
}


def _cmdline_items(cmdline: str) -> dict[str, str]:
    items: dict[str, str] = {}
    for word in cmdline.split():
        key, _, value = word.partition("=")
        items[key] = value
    return items


class BootKnob:
    kind = "boot"

    def __init__(self, roots: Roots) -> None:
        self.roots = roots

    def validate(self, setting: Setting) -> str | None:
        if setting.name not in _CPULIST_ITEMS | _OTHER_ITEMS:
            known = ", ".join(sorted(_CPULIST_ITEMS | _OTHER_ITEMS))
            return f"unknown boot item {setting.name!r} (known: {known})"
        if setting.name in _CPULIST_ITEMS:
            # isolcpus may carry flags first: "managed_irq,domain,2-3"
            cpus = re.sub(r"^((managed_irq|domain|nohz),)*", "", setting.value)
            try:
                parse_cpulist(cpus)
            except ValueError as exc:
                return f"boot.{setting.name}: {exc}"
        return None

    def read(self, key: str) -> str | None:
        cmdline = read_file(self.roots.proc_cmdline)
        if cmdline is None:
            return None
        items = _cmdline_items(cmdline)
        return items.get(key)

    def plan(self, setting: Setting) -> list[Step]:
        current = self.read(setting.name)
        if current is not None and setting.target.accepts(current):
            return [Step(setting, setting.name, current, current, "ok", note="on the kernel command line")]
        return [
            Step(
                setting,
                setting.name,
                current,
                f"{setting.name}={setting.value}",
                "advice",
                needs_reboot=True,
                note="add to the kernel command line in the bootloader, then reboot",
            )
        ]

    def apply(self, step: Step) -> None:
        """Boot items are advice: applying writes nothing."""
        del step

    def verify(self, step: Step) -> Check:
        current = self.read(step.setting.name)
        if current is not None and step.setting.target.accepts(current):
            return Check(step, "passed", current)
        return Check(step, "advice", current, "not on the kernel command line (needs reboot)")

    def rollback(self, key: str, original: str) -> None:
        """Nothing was written, so nothing is restored."""
        del key, original
