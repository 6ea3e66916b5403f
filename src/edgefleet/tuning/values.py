"""Profile values the way tuned writes them, and tuned's rules for comparing them.

- ``a|b|c``: alternatives; the knob uses the first one that applies, verify accepts any of them.
- ``>N``: set only when the current value is lower (only raise); ``<N``: only lower.
- Comparison (tuned ``_verify_value``): as integers, then as hex with leading zeros stripped (so
  cpumasks like ``00000000,00000003`` and ``3`` compare equal), then as strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["Target", "format_cpulist", "parse_cpulist", "parse_target", "values_match"]

Modifier = Literal["", ">", "<"]


@dataclass(frozen=True)
class Target:
    """A parsed profile value: ``modifier`` ("" / ">" / "<") and its ``alternatives`` in order."""

    raw: str
    modifier: Modifier
    alternatives: tuple[str, ...]

    def wants_change(self, current: str | None) -> bool:
        """False when a ``>N``/``<N`` modifier says the current value is already beyond N."""
        if not self.modifier or current is None:
            return True
        try:
            cur = int(current.split()[0])
        except (ValueError, IndexError):
            return True
        limit = int(self.alternatives[0])
        return cur < limit if self.modifier == ">" else cur > limit

    def accepts(self, current: str | None) -> bool:
        """Whether ``current`` satisfies this target (modifiers included)."""
        if current is None:
            return False
        if self.modifier and not self.wants_change(current):
            return True
        return any(values_match(current, alt) for alt in self.alternatives)


def parse_target(raw: str) -> Target:
    """Parse a value with tuned's modifiers; raises ``ValueError`` with a reason on a malformed one."""
    text = raw.strip()
    if not text:
        raise ValueError("the value is empty")
    if "\n" in text or "\x00" in text:
        raise ValueError("the value contains a newline or NUL byte")
    modifier: Modifier = ""
    if text[0] in "<>":
        modifier = ">" if text[0] == ">" else "<"
        number = text[1:].strip()
        if not re.fullmatch(r"-?\d+", number):
            raise ValueError(f"'{text[0]}N' needs an integer N, got {number!r}")
        return Target(raw=text, modifier=modifier, alternatives=(number,))
    alternatives = tuple(a.strip() for a in text.split("|"))
    if any(not a for a in alternatives):
        raise ValueError("an empty alternative in 'a|b'")
    return Target(raw=text, modifier=modifier, alternatives=alternatives)


def _norm(value: str) -> str:
    return " ".join(value.split())


def _as_hex(value: str) -> int | None:
    text = value.replace(",", "").lower().removeprefix("0x").lstrip("0") or "0"
    if not re.fullmatch(r"[0-9a-f]+", text):
        return None
    return int(text, 16)


def values_match(current: str, wanted: str) -> bool:
    """tuned's comparison: integer, then hex (leading zeros stripped), then string, any alternative."""
    cur = _norm(current)
    for alt in (_norm(a) for a in wanted.split("|")):
        try:
            if int(cur) == int(alt):
                return True
            continue
        except ValueError:
            pass
        hc, ha = _as_hex(cur), _as_hex(alt)
        if hc is not None and ha is not None:
            if hc == ha:
                return True
            continue
        if cur == alt:
            return True
    return False


def parse_cpulist(text: str) -> frozenset[int]:
    """``"0-2,5"`` → {0, 1, 2, 5}; raises ``ValueError`` on anything else."""
    cpus: set[int] = set()
    text = text.strip()
    if not text:
        return frozenset()
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)(?:\s*-\s*(\d+))?\s*", part)
        if m is None:
            raise ValueError(f"not a CPU list: {text!r} (expected e.g. '1' or '0,2-3')")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise ValueError(f"not a CPU list: {text!r} (range {lo}-{hi} runs backwards)")
        cpus.update(range(lo, hi + 1))
    return frozenset(cpus)


def format_cpulist(cpus: frozenset[int] | set[int]) -> str:
    """{0, 1, 2, 5} → ``"0-2,5"`` (the kernel's format)."""
    out: list[str] = []
    ordered = sorted(cpus)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)
