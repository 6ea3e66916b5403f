"""Is the tuned daemon running? Then it owns the kernel knobs and edgefleet must not write them.

Detection looks at tuned's pid file, asks the system D-Bus whether ``com.redhat.tuned`` has an
owner (when a bus and ``dbus-send`` exist), and scans ``/proc`` for a ``tuned`` process. Each source
is injectable; tests point them at fixture trees.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

__all__ = ["NoTuned", "SystemTunedDetector", "TunedDetector"]

BUS_NAME = "com.redhat.tuned"
Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


class TunedDetector(Protocol):
    def running(self) -> str | None:
        """Why tuned is considered running (for the error message), or None."""
        ...


class NoTuned:
    """A detector that never finds tuned (for fixture trees and tests)."""

    def running(self) -> str | None:
        return None


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=5, check=False)


class SystemTunedDetector:
    def __init__(
        self,
        proc: Path = Path("/proc"),
        run_dir: Path = Path("/run/tuned"),
        bus_socket: Path = Path("/run/dbus/system_bus_socket"),
        dbus_send: str | None = "dbus-send",
        runner: Runner = _run,
    ) -> None:
        self.proc = proc
        self.run_dir = run_dir
        self.bus_socket = bus_socket
        self.dbus_send = dbus_send
        self.runner = runner

    def running(self) -> str | None:
        return self._pid_file() or self._dbus() or self._process()

    def _pid_file(self) -> str | None:
        try:
            pid = (self.run_dir / "tuned.pid").read_text().strip()
        except OSError:
            return None
        if pid.isdigit() and (self.proc / pid).is_dir():
            return f"tuned pid file {self.run_dir / 'tuned.pid'} names live process {pid}"
        return None

    def _dbus(self) -> str | None:
        if self.dbus_send is None or not self.bus_socket.exists():
            return None
        exe = shutil.which(self.dbus_send)
        if exe is None:
            return None
        cmd = [
            exe,
            "--system",
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.NameHasOwner",
            f"string:{BUS_NAME}",
        ]
        try:
            out = self.runner(cmd)
        except (OSError, subprocess.SubprocessError):
            return None
        if out.returncode == 0 and "boolean true" in out.stdout:
            return f"D-Bus name {BUS_NAME} is owned on the system bus"
        return None

    def _process(self) -> str | None:
        try:
            entries = [p.name for p in self.proc.iterdir()]
        except OSError:
            return None
        for pid in entries:
            if not pid.isdigit():
                continue
            try:
                comm = (self.proc / pid / "comm").read_text().strip()
                argv = (self.proc / pid / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            names = {comm} | {Path(a.decode(errors="replace")).name for a in argv[:3] if a}
            if "tuned" in names:
                return f"process {pid} is tuned"
        return None
