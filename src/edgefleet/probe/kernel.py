"""Kernel and init: release, build string, preemption model (PREEMPT / PREEMPT_RT), init system."""

from __future__ import annotations

import contextlib
import re
from typing import Literal

from pydantic import Field

from edgefleet.probe.model import Section
from edgefleet.probe.paths import ProbePaths
from edgefleet.probe.read import Unknowns, Unreadable, is_dir, read_text

__all__ = ["KernelInfo", "collect_kernel"]

Preempt = Literal["none", "voluntary", "full", "lazy", "rt"]
_MODES: tuple[Preempt, ...] = ("none", "voluntary", "full", "lazy")

# PID 1's command name → init system
_INITS = {
    "systemd": "systemd",
    "init": "sysvinit",
    "openrc-init": "openrc",
    "runit": "runit",
    "runsvdir": "runit",
    "s6-svscan": "s6",
    "dinit": "dinit",
    "tini": "tini",
    "dumb-init": "dumb-init",
    "catatonit": "catatonit",
    "procd": "procd",
}


class KernelInfo(Section):
    """The running kernel and the init system."""

    release: str | None = Field(description="Kernel release, as `uname -r`.")
    version: str | None = Field(description="Kernel build string, as `uname -v` (names PREEMPT flavours).")
    preempt: Preempt | None = Field(
        description="Preemption model in effect: none, voluntary, full, lazy, or rt (PREEMPT_RT)."
    )
    preempt_dynamic: bool | None = Field(description="Whether the model can be chosen at boot (preempt=).")
    realtime: bool | None = Field(description="Whether this is a PREEMPT_RT kernel.")
    cmdline: str | None = Field(description="The kernel command line.")
    init_system: str | None = Field(
        description="systemd (booted with it), sysvinit, openrc, runit, s6, busybox, tini... or 'other'."
    )
    pid1: str | None = Field(description="The command name of PID 1.")


def _preempt(paths: ProbePaths, version: str, cmdline: str | None) -> tuple[Preempt, bool, bool]:
    """(model, dynamic, realtime) from the build string, sysfs, debugfs and the command line."""
    realtime = "PREEMPT_RT" in version.split()
    if not realtime:
        with contextlib.suppress(Unreadable):
            realtime = read_text(paths.sys / "kernel/realtime").strip() == "1"
    dynamic = "PREEMPT_DYNAMIC" in version.split()
    if realtime:
        return "rt", dynamic, True
    if dynamic:
        debug = paths.sys / "kernel/debug/sched/preempt"
        try:
            current = re.search(r"\((\w+)\)", read_text(debug))
            if current and current.group(1) in _MODES:
                return current.group(1), True, False  # type: ignore[return-value]
        except Unreadable:
            pass
        arg = re.search(r"(?:^|\s)preempt=(\w+)", cmdline or "")
        if arg and arg.group(1) in _MODES:
            return arg.group(1), True, False  # type: ignore[return-value]
        raise Unreadable(
            f"PREEMPT_DYNAMIC kernel: {debug} is unreadable (debugfs) and the command line has no "
            "preempt=, so the build default in effect is not visible"
        )
    words = version.split()
    if "PREEMPT_LAZY" in words:
        return "lazy", False, False
    if "PREEMPT" in words:
        return "full", False, False
    # a build string without PREEMPT is a none or voluntary kernel; only the config tells which
    raise Unreadable(f"kernel version {version!r} names no PREEMPT flavour (none and voluntary look alike)")


def _init(paths: ProbePaths) -> tuple[str, str]:
    comm = read_text(paths.proc / "1/comm").strip()
    if comm == "systemd" or is_dir(paths.run / "systemd/system"):
        return "systemd", comm
    if comm == "init":
        try:
            target = (paths.proc / "1/exe").readlink().name
        except OSError:
            target = ""
        if target == "busybox":
            return "busybox", comm
    return _INITS.get(comm, "other"), comm


def collect_kernel(paths: ProbePaths) -> KernelInfo:
    """Read the kernel section from ``/proc/sys/kernel``, ``/proc/cmdline`` and PID 1."""
    unknown = Unknowns()
    release = unknown.attempt("release", lambda: read_text(paths.proc / "sys/kernel/osrelease").strip())
    version = unknown.attempt("version", lambda: read_text(paths.proc / "sys/kernel/version").strip())
    cmdline = unknown.attempt("cmdline", lambda: read_text(paths.proc / "cmdline").strip())
    preempt = None
    if version is None:
        for name in ("preempt", "preempt_dynamic", "realtime"):
            unknown[name] = unknown["version"]
    else:
        preempt = unknown.attempt("preempt", lambda: _preempt(paths, version, cmdline))
    dynamic = "PREEMPT_DYNAMIC" in version.split() if version is not None else None
    realtime = preempt[2] if preempt else None
    if version is not None and preempt is None:
        realtime = "PREEMPT_RT" in version.split()
    init = unknown.attempt("init_system", lambda: _init(paths))
    if init is None:
        unknown["pid1"] = unknown["init_system"]
    return KernelInfo(
        release=release,
        version=version,
        preempt=preempt[0] if preempt else None,
        preempt_dynamic=dynamic,
        realtime=realtime,
        cmdline=cmdline,
        init_system=init[0] if init else None,
        pid1=init[1] if init else None,
        unknown=dict(unknown),
    )
