"""``[sysctl]``: files under /proc/sys, named the way sysctl(8) names them (``vm.swappiness``)."""

from __future__ import annotations

import re
from pathlib import Path

from edgefleet.tuning.knob import Setting, Step
from edgefleet.tuning.knobs.base import FileKnob, contained

__all__ = ["SysctlKnob"]

_NAME = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)+")


class SysctlKnob(FileKnob):
    kind = "sysctl"

    def path(self, name: str) -> Path:
        return self.roots.proc_sys.joinpath(*name.split("."))

    def validate(self, setting: Setting) -> str | None:
        if not _NAME.fullmatch(setting.name):
            return (
                f"sysctl name {setting.name!r} is not a dotted /proc/sys name "
                "(letters, digits, '_' and '-' between dots, e.g. 'vm.swappiness')"
            )
        if not contained(self.path(setting.name), self.roots.proc_sys):
            return f"sysctl {setting.name!r} resolves outside /proc/sys"
        return None

    def plan(self, setting: Setting) -> list[Step]:
        return [self.plan_path(setting, self.path(setting.name))]
