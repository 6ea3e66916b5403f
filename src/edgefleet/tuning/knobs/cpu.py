"""``[cpu]``: frequency governor, energy-performance preference and bias, boost, minimum performance.

Everything is feature-detected: a board without a cpufreq driver (a VM, some BSP kernels) plans
these as ``unsupported``, which is reported and skipped, not a failure.
"""

from __future__ import annotations

import re
from pathlib import Path

from edgefleet.tuning.knob import Setting, Step
from edgefleet.tuning.knobs.base import FileKnob
from edgefleet.tuning.roots import read_file

__all__ = ["CpuKnob"]

_EPB = {
    "performance": 0,
    "balance-performance": 4,
    "normal": 6,
    "balance-power": 8,
    "power": 15,
    "powersave": 15,
}
_WORD = re.compile(r"[a-z0-9_\-]+")
_NAMES = ("governor", "energy_performance_preference", "energy_perf_bias", "boost", "min_perf_pct")


class CpuKnob(FileKnob):
    kind = "cpu"

    @property
    def cpu_dir(self) -> Path:
        return self.roots.sys / "devices" / "system" / "cpu"

    def policies(self) -> list[Path]:
        """One directory per cpufreq policy (CPUs sharing a clock share a policy)."""
        found = sorted((self.cpu_dir / "cpufreq").glob("policy[0-9]*"))
        if not found:
            found = sorted(p for p in self.cpu_dir.glob("cpu[0-9]*/cpufreq") if p.is_dir())
        seen: set[Path] = set()
        out: list[Path] = []
        for p in found:
            real = p.resolve()
            if real not in seen and (p / "scaling_governor").exists():
                seen.add(real)
                out.append(p)
        return out

    def validate(self, setting: Setting) -> str | None:
        t = setting.target
        name = setting.name
        if name not in _NAMES:
            return f"unknown cpu knob {name!r} (known: {', '.join(_NAMES)})"
        if name in {"governor", "energy_performance_preference"}:
            if t.modifier or not all(_WORD.fullmatch(a) for a in t.alternatives):
                return f"cpu.{name} = {setting.value!r}: expected names like 'performance' or 'a|b'"
        elif name == "energy_perf_bias":
            for a in t.alternatives:
                if a not in _EPB and not (a.isdigit() and 0 <= int(a) <= 15):
                    return f"cpu.energy_perf_bias = {setting.value!r}: allowed {'|'.join(_EPB)} or 0-15"
        elif name == "boost":
            if t.modifier or t.alternatives not in {("0",), ("1",)}:
                return f"cpu.boost = {setting.value!r}: allowed 0 or 1"
        elif not all(a.isdigit() and 0 <= int(a) <= 100 for a in t.alternatives):
            return f"cpu.min_perf_pct = {setting.value!r}: expected a percentage 0-100 (optionally >N or <N)"
        return None

    def _unsupported(self, setting: Setting, why: str) -> list[Step]:
        return [Step(setting, f"cpu.{setting.name}", None, None, "unsupported", note=why)]

    def plan(self, setting: Setting) -> list[Step]:
        name = setting.name
        if name == "energy_perf_bias":
            return self._plan_epb(setting)
        if name == "boost":
            return self._plan_boost(setting)
        policies = self.policies()
        if not policies and not (name == "min_perf_pct" and (self.cpu_dir / "intel_pstate").is_dir()):
            return self._unsupported(setting, "no cpufreq driver on this board")
        if name == "min_perf_pct":
            return self._plan_min_perf(setting, policies)
        fname, avail = (
            ("scaling_governor", "scaling_available_governors")
            if name == "governor"
            else ("energy_performance_preference", "energy_performance_available_preferences")
        )
        steps: list[Step] = []
        for policy in policies:
            if not (policy / fname).exists():
                steps.append(
                    Step(
                        setting, str(policy / fname), None, None, "unsupported", note="driver has no " + fname
                    )
                )
                continue
            offered = read_file(policy / avail)
            choices = offered.split() if offered is not None else None
            steps.append(self.plan_path(setting, policy / fname, choices=choices))
        return steps

    def _plan_epb(self, setting: Setting) -> list[Step]:
        files = sorted(self.cpu_dir.glob("cpu[0-9]*/power/energy_perf_bias"))
        if not files:
            return self._unsupported(setting, "no energy_perf_bias (not an Intel CPU, or no driver)")
        alt = setting.target.alternatives[0]
        value = str(_EPB[alt]) if alt in _EPB else alt
        return [self.plan_path(setting, f, target=value, accept=(value,)) for f in files]

    def _plan_boost(self, setting: Setting) -> list[Step]:
        want = setting.target.alternatives[0]
        boost = self.cpu_dir / "cpufreq" / "boost"
        if boost.is_file():
            return [self.plan_path(setting, boost, target=want, accept=(want,))]
        no_turbo = self.cpu_dir / "intel_pstate" / "no_turbo"
        if no_turbo.is_file():
            inverted = "0" if want == "1" else "1"
            return [self.plan_path(setting, no_turbo, target=inverted, accept=(inverted,))]
        return self._unsupported(setting, "no boost control (cpufreq/boost or intel_pstate/no_turbo)")

    def _plan_min_perf(self, setting: Setting, policies: list[Path]) -> list[Step]:
        pct_file = self.cpu_dir / "intel_pstate" / "min_perf_pct"
        if pct_file.is_file():
            return [self.plan_path(setting, pct_file)]
        pct = int(setting.target.alternatives[0])
        steps: list[Step] = []
        for policy in policies:
            lo, hi = read_file(policy / "cpuinfo_min_freq"), read_file(policy / "cpuinfo_max_freq")
            if lo is None or hi is None or not (policy / "scaling_min_freq").exists():
                steps.append(
                    Step(setting, str(policy), None, None, "unsupported", note="no scaling_min_freq")
                )
                continue
            want = int(lo) + (int(hi) - int(lo)) * pct // 100
            offered = read_file(policy / "scaling_available_frequencies")
            if offered:
                freqs = sorted(int(f) for f in offered.split())
                want = next((f for f in freqs if f >= want), freqs[-1])
            current = read_file(policy / "scaling_min_freq")
            if (
                setting.target.modifier
                and current
                and not setting.target.wants_change(str(int(current) * 100 // max(int(hi), 1)))
            ):
                steps.append(Step(setting, str(policy / "scaling_min_freq"), current.strip(), None, "keep"))
                continue
            steps.append(
                self.plan_path(setting, policy / "scaling_min_freq", target=str(want), accept=(str(want),))
            )
        return steps
