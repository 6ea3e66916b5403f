"""``[irq]``: move interrupts off the CPUs that run inference (``avoid_cpus = "2-3"``).

Each ``/proc/irq/N/smp_affinity_list`` loses the avoided CPUs (an IRQ left with none gets every
other online CPU), and ``/proc/irq/default_smp_affinity`` does the same for IRQs registered later.
Some IRQs are kernel-managed and refuse a new affinity: such a refusal is reported, not fatal.
"""

from __future__ import annotations

from pathlib import Path

from edgefleet.tuning.errors import TuneProfileError
from edgefleet.tuning.knob import Check, Setting, Step
from edgefleet.tuning.knobs.base import FileKnob
from edgefleet.tuning.roots import read_file
from edgefleet.tuning.values import format_cpulist, parse_cpulist, values_match

__all__ = ["IrqKnob"]


def _mask(cpus: frozenset[int]) -> str:
    return format(sum(1 << c for c in cpus), "x")


def _unmask(text: str) -> frozenset[int]:
    bits = int(text.replace(",", "").strip() or "0", 16)
    return frozenset(i for i in range(bits.bit_length()) if bits >> i & 1)


class IrqKnob(FileKnob):
    kind = "irq"

    def validate(self, setting: Setting) -> str | None:
        if setting.name != "avoid_cpus":
            return f"unknown irq knob {setting.name!r} (known: avoid_cpus)"
        if setting.target.modifier or len(setting.target.alternatives) != 1:
            return "irq.avoid_cpus takes one CPU list, without '>', '<' or '|'"
        try:
            cpus = parse_cpulist(setting.value)
        except ValueError as exc:
            return f"irq.avoid_cpus: {exc}"
        if not cpus:
            return "irq.avoid_cpus: the CPU list is empty"
        return None

    def online(self) -> frozenset[int]:
        text = read_file(self.roots.sys / "devices" / "system" / "cpu" / "online")
        return parse_cpulist(text) if text else frozenset()

    def plan(self, setting: Setting) -> list[Step]:
        avoid = parse_cpulist(setting.value)
        online = self.online()
        rest = online - avoid
        if online and not rest:
            raise TuneProfileError(
                f"irq.avoid_cpus = {setting.value!r} leaves no online CPU (online: {format_cpulist(online)})",
                source=setting.source,
                line=setting.line,
            )
        steps: list[Step] = []
        default = self.roots.proc_irq / "default_smp_affinity"
        raw = read_file(default)
        if raw is not None:
            keep = _unmask(raw) - avoid or rest
            steps.append(self.plan_path(setting, default, target=_mask(keep)))
        irqs = sorted(
            (p for p in self.roots.proc_irq.glob("[0-9]*") if (p / "smp_affinity_list").is_file()),
            key=lambda p: int(p.name),
        )
        for irq in irqs:
            path = irq / "smp_affinity_list"
            current = read_file(path)
            if current is None:
                continue
            keep = parse_cpulist(current) - avoid or rest
            steps.append(self.plan_path(setting, path, target=format_cpulist(keep), best_effort=True))
        if not steps:
            return [Step(setting, str(self.roots.proc_irq), None, None, "unsupported", note="no /proc/irq")]
        return steps

    def verify(self, step: Step) -> Check:
        current = self.read(step.key)
        if current is None:
            return Check(step, "skipped", None, f"missing: {step.key}")
        avoid = parse_cpulist(step.setting.value)
        if Path(step.key).name == "default_smp_affinity":
            ok = not (_unmask(current) & avoid) or (
                step.target is not None and values_match(current, step.target)
            )
        else:
            ok = not (parse_cpulist(current) & avoid)
        return Check(
            step, "passed" if ok else "failed", current, "" if ok else f"still on CPUs {step.setting.value}"
        )
