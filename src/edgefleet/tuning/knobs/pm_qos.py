"""``[pm_qos]``: a CPU wake-up latency limit through ``/dev/cpu_dma_latency``.

The kernel honours the limit only while a process keeps the device open, so this knob writes no
file: :class:`LatencyHold` opens the device, writes the limit and holds the descriptor until it is
closed (the device agent holds it while the profile is active). ``force_latency`` takes tuned's
forms: microseconds, ``cstate.id:N``, ``cstate.id_no_zero:N``, ``cstate.name:C6``, ``|`` between them.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path
from types import TracebackType

from edgefleet.tuning.knob import Check, Setting, Step
from edgefleet.tuning.roots import Roots, read_file

__all__ = ["LatencyHold", "PmQosKnob", "read_latency"]

_FORM = re.compile(r"\d+|cstate\.id:\d+|cstate\.id_no_zero:\d+|cstate\.name:[A-Za-z0-9_\-]+")


def read_latency(device: Path) -> int | None:
    """The limit in force now, in µs (2000000000 = none), or None when the device is absent."""
    try:
        with device.open("rb") as f:
            data = f.read(4)
    except OSError:
        return None
    if len(data) != 4:
        return None
    return int(struct.unpack("=i", data)[0])


class LatencyHold:
    """Holds a PM QoS CPU latency limit while open. Use as a context manager or call :meth:`close`."""

    def __init__(self, device: Path, latency_us: int) -> None:
        self.device = device
        self.latency_us = latency_us
        self._fd: int | None = os.open(device, os.O_RDWR)
        try:
            os.write(self._fd, struct.pack("=i", latency_us))
        except OSError:
            self.close()
            raise

    @property
    def held(self) -> bool:
        return self._fd is not None

    def close(self) -> None:
        """Release the limit (the kernel drops it when the descriptor closes)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> LatencyHold:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class PmQosKnob:
    kind = "pm_qos"

    def __init__(self, roots: Roots) -> None:
        self.roots = roots

    def validate(self, setting: Setting) -> str | None:
        if setting.name != "force_latency":
            return f"unknown pm_qos knob {setting.name!r} (known: force_latency)"
        if setting.target.modifier or not all(_FORM.fullmatch(a) for a in setting.target.alternatives):
            return (
                f"pm_qos.force_latency = {setting.value!r}: expected microseconds or "
                "cstate.id:N / cstate.id_no_zero:N / cstate.name:NAME, '|' between alternatives"
            )
        return None

    def _states(self) -> list[tuple[int, str, int]]:
        base = self.roots.sys / "devices" / "system" / "cpu" / "cpu0" / "cpuidle"
        out: list[tuple[int, str, int]] = []
        for d in sorted(base.glob("state[0-9]*"), key=lambda p: int(p.name[5:])):
            name, latency = read_file(d / "name"), read_file(d / "latency")
            if name is not None and latency is not None and latency.strip().isdigit():
                out.append((int(d.name[5:]), name.strip(), int(latency)))
        return out

    def resolve(self, value: str) -> int | None:
        """The first alternative that resolves to microseconds on this board, or None."""
        states = self._states()
        for alt in value.split("|"):
            if alt.isdigit():
                return int(alt)
            kind, _, arg = alt.partition(":")
            for sid, name, latency in states:
                if kind == "cstate.name" and name == arg:
                    return latency
                if kind in {"cstate.id", "cstate.id_no_zero"} and sid == int(arg):
                    return latency if latency or kind == "cstate.id" else None
        return None

    def read(self, key: str) -> str | None:
        del key
        value = read_latency(self.roots.cpu_dma_latency)
        return None if value is None else str(value)

    def plan(self, setting: Setting) -> list[Step]:
        key = str(self.roots.cpu_dma_latency)
        current = self.read(key)
        if current is None:
            return [Step(setting, key, None, None, "unsupported", note=f"no {self.roots.cpu_dma_latency}")]
        latency = self.resolve(setting.value)
        if latency is None:
            return [
                Step(setting, key, current, None, "unsupported", note=f"no C-state matches {setting.value!r}")
            ]
        return [
            Step(
                setting,
                key,
                current,
                str(latency),
                "hold",
                note="holds only while a process keeps the device open (the device agent does)",
            )
        ]

    def apply(self, step: Step) -> None:
        """Nothing to write: a :class:`LatencyHold` carries the limit."""
        del step

    def hold(self, step: Step) -> LatencyHold:
        if step.target is None:
            raise ValueError("nothing to hold")
        return LatencyHold(self.roots.cpu_dma_latency, int(step.target))

    def verify(self, step: Step) -> Check:
        if step.action == "unsupported":
            return Check(step, "skipped", None, step.note)
        current = self.read(step.key)
        if current is None or step.target is None:
            return Check(step, "skipped", current, "device absent")
        if int(current) <= int(step.target):
            return Check(step, "passed", current)
        return Check(
            step, "failed", current, f"not held: limit {current} µs > {step.target} µs (no process holds it)"
        )

    def rollback(self, key: str, original: str) -> None:
        """A hold ends when its descriptor closes; nothing to write back."""
        del key, original
