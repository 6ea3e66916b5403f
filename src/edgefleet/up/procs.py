"""The processes `up` starts: detached (own session), logged to a file, remembered in a pid file.

A pid file holds the pid and the process's start time (field 22 of ``/proc/<pid>/stat``), so a
pid the kernel handed to another process since is never mistaken for ours, nor signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgefleet.up.errors import UpStepError

__all__ = ["ProcessTable", "Running"]


@dataclass(frozen=True)
class Running:
    name: str
    pid: int
    started: int  # clock ticks since boot, from /proc/<pid>/stat
    argv: tuple[str, ...]


class ProcessTable:
    """Start, find and stop the named processes of one `up` directory."""

    def __init__(
        self,
        run_dir: Path,
        log_dir: Path,
        *,
        proc: Path = Path("/proc"),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.run_dir, self.log_dir, self.proc = run_dir, log_dir, proc
        self._clock, self._sleep = clock, sleep
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def _pidfile(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def _start_time(self, pid: int) -> int | None:
        """The start time of ``pid``, or None when it is gone or a zombie."""
        try:
            stat = (self.proc / str(pid) / "stat").read_text()
        except OSError:
            return None
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] in {"Z", "X"}:
            return None
        return int(fields[19])

    def start(self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> Running:
        """Start ``argv`` in its own session, output appended to ``<log_dir>/<name>.log``."""
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as out:
            out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
            out.flush()
            try:
                p = subprocess.Popen(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C in the terminal reaches `up`, which stops it
                    env=dict(env) if env is not None else None,
                )
            except OSError as exc:
                raise UpStepError(f"cannot start {name}: {exc}", code="up.spawn_failed", name=name) from exc
        self._children[p.pid] = p
        started = self._start_time(p.pid) or 0
        running = Running(name, p.pid, started, tuple(argv))
        tmp = self._pidfile(name).with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": p.pid, "started": started, "argv": list(argv)}))
        tmp.replace(self._pidfile(name))
        return running

    def get(self, name: str) -> Running | None:
        """The running process recorded as ``name``; None (and the stale pid file removed) otherwise."""
        path = self._pidfile(name)
        try:
            data = json.loads(path.read_text())
            rec = Running(name, int(data["pid"]), int(data["started"]), tuple(data["argv"]))
        except (OSError, ValueError, KeyError, TypeError):
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        if self._alive(rec):
            return rec
        with contextlib.suppress(OSError):
            path.unlink()
        return None

    def _alive(self, rec: Running) -> bool:
        child = self._children.get(rec.pid)
        if child is not None and child.poll() is not None:
            return False
        started = self._start_time(rec.pid)
        return started is not None and rec.started in {0, started}

    def exit_code(self, rec: Running) -> int | None:
        """The exit status of a process this table started and that ended; None otherwise."""
        child = self._children.get(rec.pid)
        return child.poll() if child is not None else None

    def stop(self, name: str, *, timeout: float = 10.0) -> bool:
        """SIGTERM to the process group, SIGKILL after ``timeout``; True when something was running."""
        rec = self.get(name)
        if rec is None:
            return False
        self._signal(rec, signal.SIGTERM)
        end = self._clock() + timeout
        while self._alive(rec) and self._clock() < end:
            self._sleep(0.1)
        if self._alive(rec):
            self._signal(rec, signal.SIGKILL)
            end = self._clock() + 10.0
            while self._alive(rec) and self._clock() < end:
                self._sleep(0.1)
        if self._alive(rec):
            raise UpStepError(
                f"{name} (pid {rec.pid}) does not stop: it belongs to another user? "
                "Run this as the user who ran 'edgefleet up'",
                code="up.stop_failed",
                name=name,
            )
        child = self._children.pop(rec.pid, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=1.0)
        with contextlib.suppress(OSError):
            self._pidfile(name).unlink()
        return True

    def _signal(self, rec: Running, sig: signal.Signals) -> None:
        # started with start_new_session: its process group id is its pid, and its helpers share it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(rec.pid) == rec.pid:
                os.killpg(rec.pid, sig)
                return
            os.kill(rec.pid, sig)
