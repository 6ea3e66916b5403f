"""``[sysfs]``: any file under /sys, named by its absolute path; globs expand to every match."""

from __future__ import annotations

import posixpath
from pathlib import Path

from edgefleet.tuning.knob import Setting, Step
from edgefleet.tuning.knobs.base import FileKnob, contained

__all__ = ["SysfsKnob"]


class SysfsKnob(FileKnob):
    kind = "sysfs"

    def _relative(self, name: str) -> str | None:
        norm = posixpath.normpath(name)
        if not name.startswith("/sys/") or norm != name.rstrip("/") or not norm.startswith("/sys/"):
            return None
        return norm.removeprefix("/sys/")

    def validate(self, setting: Setting) -> str | None:
        rel = self._relative(setting.name)
        if rel is None:
            return (
                f"sysfs path {setting.name!r} is not an absolute, normalised path under /sys "
                "(e.g. '/sys/kernel/mm/ksm/run'; '..' is not allowed)"
            )
        return None

    def paths(self, name: str) -> list[Path]:
        rel = self._relative(name)
        if rel is None:
            return []
        hits = sorted(self.roots.sys.glob(rel))
        return [h for h in hits if h.is_file() and contained(h, self.roots.sys)]

    def plan(self, setting: Setting) -> list[Step]:
        paths = self.paths(setting.name)
        if not paths:
            return [
                Step(setting, setting.name, None, None, "unsupported", note=f"no match for {setting.name}")
            ]
        return [self.plan_path(setting, p) for p in paths]
