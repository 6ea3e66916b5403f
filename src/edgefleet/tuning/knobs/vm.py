"""``[vm]``: transparent hugepages (``enabled`` and ``defrag``), read from their ``[bracketed]`` choice."""

from __future__ import annotations

import re
from pathlib import Path

from edgefleet.tuning.knob import Setting, Step
from edgefleet.tuning.knobs.base import FileKnob

__all__ = ["VmKnob"]

_FILES = {
    "transparent_hugepages": ("enabled", ("always", "madvise", "never")),
    "transparent_hugepage_defrag": ("defrag", ("always", "defer", "defer+madvise", "madvise", "never")),
}


def bracketed(raw: str) -> str:
    """``"always [madvise] never"`` → ``"madvise"``; a file without brackets is returned stripped."""
    m = re.search(r"\[([^\]]+)\]", raw)
    return m.group(1) if m else raw.strip()


class VmKnob(FileKnob):
    kind = "vm"

    def current(self, raw: str) -> str:
        return bracketed(raw)

    def original(self, raw: str) -> str:
        return bracketed(raw)

    def path(self, name: str) -> Path:
        return self.roots.sys / "kernel" / "mm" / "transparent_hugepage" / _FILES[name][0]

    def validate(self, setting: Setting) -> str | None:
        if setting.name not in _FILES:
            return f"unknown vm knob {setting.name!r} (known: {', '.join(sorted(_FILES))})"
        allowed = _FILES[setting.name][1]
        bad = [a for a in setting.target.alternatives if a not in allowed]
        if bad or setting.target.modifier:
            return f"vm.{setting.name} = {setting.value!r}: allowed values are {'|'.join(allowed)}"
        return None

    def plan(self, setting: Setting) -> list[Step]:
        path = self.path(setting.name)
        raw = path.read_text() if path.is_file() else None
        choices = re.sub(r"[\[\]]", "", raw).split() if raw else None
        return [self.plan_path(setting, path, choices=choices)]
