"""Start a command inside a sandbox (cgroup + namespaces + dropped privileges) and follow it.

:class:`Sandbox` checks a :class:`SandboxSpec` against the kernel before anything starts, creates
the cgroup, forks the shim (see :mod:`edgefleet.sandbox.child`) and waits until the workload has
exec'd (or reports why it could not). :class:`SandboxProcess` follows one workload: poll, wait,
signal, graceful stop, usage. Each workload keeps ``state.json`` and, once it ended, ``exit.json``
in ``<run_dir>/<name>/``, so a new :class:`Sandbox` can :meth:`~Sandbox.adopt` running workloads.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgefleet.errors import PermissionDeniedError
from edgefleet.sandbox.cgroups import CgroupDriver, Group, Unenforced, Usage, detect_driver
from edgefleet.sandbox.child import ChildPlan, run_shim
from edgefleet.sandbox.errors import SandboxFailedError, UnenforceableError, WorkloadConflictError
from edgefleet.sandbox.report import RunReport
from edgefleet.sandbox.seccomp import seccomp_available
from edgefleet.sandbox.spec import SandboxSpec

__all__ = ["LaunchRecord", "LogConfig", "Sandbox", "SandboxProcess"]

LogConfig = tuple[Path, int, int]  # path, max bytes per file, rotated files kept


@dataclass(frozen=True)
class LaunchRecord:
    """``state.json``: what was started, where, and the PIDs to find it again."""

    name: str
    argv: list[str]
    pid: int
    shim_pid: int
    started: float
    cgroup_version: int
    applied: dict[str, str] = field(default_factory=dict)
    unenforced: list[Unenforced] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> LaunchRecord:
        data = json.loads(text)
        data["unenforced"] = [Unenforced(**u) for u in data.get("unenforced", [])]
        return cls(**data)


class Sandbox:
    """Native backend: one cgroup per workload under ``driver``'s parent, namespaces, no root."""

    backend = "native"

    def __init__(
        self,
        driver: CgroupDriver | None = None,
        *,
        run_dir: Path = Path("/run/edgefleet/sandbox"),
        parent: str = "edgefleet",
        proc: Path = Path("/proc"),
        geteuid: Callable[[], int] = os.geteuid,
    ) -> None:
        self._driver = driver
        self._parent, self._proc = parent, proc
        self.run_dir = run_dir
        self._geteuid = geteuid

    @property
    def driver(self) -> CgroupDriver:
        if self._driver is None:
            self._driver = detect_driver(self._parent, proc=self._proc)
        return self._driver

    def check(self, spec: SandboxSpec, *, strict: bool = False) -> list[Unenforced]:
        """What of ``spec`` cannot be enforced here; raises before anything starts when that is fatal."""
        if self._geteuid() != 0:
            raise PermissionDeniedError(
                "the native sandbox needs root (namespaces, cgroups, mounts); run as root or use the agent",
                code="sandbox.needs_root",
            )
        unenforced = self.driver.unenforceable(spec.limits)
        if spec.isolation.seccomp and (why := seccomp_available()) is not None:
            unenforced.append(Unenforced("seccomp", why))
        if strict and unenforced:
            raise UnenforceableError(
                "strict: not enforceable here: " + "; ".join(f"{u.limit} ({u.reason})" for u in unenforced),
                limits=[u.limit for u in unenforced],
            )
        return unenforced

    def start(
        self, spec: SandboxSpec, *, strict: bool = False, log: LogConfig | None = None
    ) -> SandboxProcess:
        """Create the cgroup, fork the shim and return once the workload has exec'd."""
        unenforced = self.check(spec, strict=strict)
        existing = self.driver.open(spec.name)
        if existing is not None and self.driver.procs(existing):
            raise WorkloadConflictError(f"workload {spec.name!r} is already running", name=spec.name)
        if existing is not None:
            self.driver.remove(existing)
        wdir = self.run_dir / spec.name
        wdir.mkdir(parents=True, exist_ok=True)
        for stale in ("exit.json", "state.json"):
            (wdir / stale).unlink(missing_ok=True)
        group = self.driver.create(spec.name, spec.limits)
        seccomp = spec.isolation.seccomp and not any(u.limit == "seccomp" for u in unenforced)
        read_fd, write_fd = os.pipe()
        started = time.time()
        plan = ChildPlan(spec, group.procs_files, wdir / "exit.json", write_fd, log, seccomp)
        try:
            shim = os.fork()
        except OSError as exc:
            os.close(read_fd)
            os.close(write_fd)
            self.driver.remove(group)
            raise SandboxFailedError(
                f"{spec.name}: fork failed: {exc.strerror}", code="sandbox.start_failed"
            ) from exc
        if shim == 0:
            os.close(read_fd)
            run_shim(plan)
        os.close(write_fd)
        message = _read_all(read_fd)
        pid, error = _parse_sync(message)
        if error is not None or pid is None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(shim, 0)
            self.driver.kill(group)
            self.driver.remove(group)
            raise SandboxFailedError(
                f"{spec.name}: {error or 'the shim ended without starting the workload'}",
                code="sandbox.start_failed",
                name=spec.name,
            )
        notes = [f"{u.limit}: not enforced ({u.reason})" for u in unenforced]
        record = LaunchRecord(
            spec.name, list(spec.argv), pid, shim, started, self.driver.version, group.applied, unenforced
        )
        (wdir / "state.json").write_text(record.to_json())
        return SandboxProcess(self.driver, group, wdir, record, owned=True, notes=notes)

    def adopt(self, name: str) -> SandboxProcess | None:
        """The workload ``name`` left by an earlier process: found by its state file and its cgroup."""
        wdir = self.run_dir / name
        try:
            record = LaunchRecord.from_json((wdir / "state.json").read_text())
        except (OSError, ValueError, TypeError, KeyError):
            return None
        group = self.driver.open(name)
        if group is None:
            return None
        procs = self.driver.procs(group)
        if procs and record.pid not in procs:
            return None  # another process now owns that cgroup name
        return SandboxProcess(self.driver, group, wdir, record, owned=False)

    def discard_torn(self, name: str) -> int:
        """Kill and remove what a start of ``name`` interrupted before its launch record left behind.

        A process killed between creating the cgroup and writing ``state.json`` leaves a workload
        running that nothing can adopt; it would hold the name ("already running") for ever.
        Nothing is done when the record exists. Returns how many processes were killed.
        """
        if (self.run_dir / name / "state.json").exists():
            return 0
        group = self.driver.open(name)
        if group is None:
            return 0
        killed = len(self.driver.procs(group))
        self.driver.kill(group)
        self.driver.remove(group)
        return killed

    def names(self) -> list[str]:
        """Workloads with a state file under :attr:`run_dir`."""
        with contextlib.suppress(OSError):
            return sorted(p.name for p in self.run_dir.iterdir() if (p / "state.json").exists())
        return []


class SandboxProcess:
    """One started (or adopted) workload."""

    def __init__(
        self,
        driver: CgroupDriver,
        group: Group,
        wdir: Path,
        record: LaunchRecord,
        *,
        owned: bool,
        notes: list[str] | None = None,
    ) -> None:
        self.driver, self.group, self.wdir = driver, group, wdir
        self.name, self.argv, self.pid, self.shim_pid = record.name, record.argv, record.pid, record.shim_pid
        self.started = record.started
        self.owned = owned
        self.applied = dict(group.applied or record.applied)
        self.unenforced = list(record.unenforced)
        self.notes = (
            notes if notes is not None else [f"{u.limit}: not enforced ({u.reason})" for u in self.unenforced]
        )
        self._status: int | None = None
        self._ended: float | None = None
        self._shim_done = False
        self._stopped = False
        self._report: RunReport | None = None

    def _reap_shim(self, block: bool) -> None:
        if self._shim_done:
            return
        try:
            pid, _ = os.waitpid(self.shim_pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            self._shim_done = not _alive(self.shim_pid)
            return
        self._shim_done = pid != 0

    def _read_exit(self) -> bool:
        try:
            data = json.loads((self.wdir / "exit.json").read_text())
        except (OSError, ValueError):
            return False
        self._status, self._ended = int(data["status"]), float(data["ended"])
        return True

    def poll(self) -> bool:
        """True once the workload has ended (its exit status is then known, or it was lost)."""
        if self._ended is not None:
            return True
        self._reap_shim(block=False)
        if self._read_exit():
            return True
        if self._shim_done and not self.driver.procs(self.group):
            self._ended = time.time()  # the shim died without a record: the status is lost
            return True
        return False

    def wait(self, timeout: float | None = None) -> RunReport:
        """Block until the workload ends (or ``timeout`` passes: TimeoutError) and report."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.owned and timeout is None:
            self._reap_shim(block=True)
        while not self.poll():
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{self.name} still running after {timeout} s")
            time.sleep(0.02)
        return self.report()

    def report(self) -> RunReport:
        """The final report (reads the cgroup's counters once, then removes the cgroup)."""
        if self._report is not None:
            return self._report
        if not self.poll():
            raise SandboxFailedError(f"{self.name} is still running", name=self.name)
        usage = self.usage()
        with contextlib.suppress(SandboxFailedError):
            if self.driver.procs(self.group):
                self.driver.kill(self.group)  # children left behind by the main process
        self.driver.remove(self.group)
        self._report = RunReport.from_status(
            name=self.name,
            backend="native",
            argv=self.argv,
            status=self._status,
            usage=usage,
            duration_s=(self._ended or time.time()) - self.started,
            cgroup_version=self.driver.version,
            stopped=self._stopped,
            applied=self.applied,
            unenforced=self.unenforced,
            notes=self.notes,
        )
        return self._report

    def running(self) -> bool:
        return not self.poll()

    def usage(self) -> Usage:
        return self.driver.usage(self.group)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to every process of the workload."""
        for pid in self.driver.procs(self.group):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def stop(self, grace: float = 10.0) -> RunReport:
        """SIGTERM everything, wait ``grace`` seconds, then kill the whole cgroup; report."""
        if not self.poll():
            self._stopped = True
            self.signal(signal.SIGTERM)
            try:
                return self.wait(timeout=grace)
            except TimeoutError:
                self.driver.kill(self.group)
        return self.wait(timeout=max(grace, 5.0))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_all(fd: int) -> bytes:
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def _parse_sync(message: bytes) -> tuple[int | None, str | None]:
    # the pipe carries whole writes (each under PIPE_BUF): "P<pid>\n" from the shim, "E<why>" on failure
    text = message.decode("utf-8", "replace")
    match = re.search(r"P(\d+)\n", text)
    rest = (text[: match.start()] + text[match.end() :]) if match else text
    error = rest[1:].strip() if rest.startswith("E") else (rest.strip() or None)
    return (int(match.group(1)) if match else None), error
