"""Fault injection for tests: trials with randomised timing, and the faults themselves.

Each fault test runs a fault many times and records what happened in a :class:`Trials`::

    with Trials("agent SIGKILL mid-update", planned=trial_count(quick=3, full=100)) as trials:
        for _ in range(trials.planned):
            with trials.trial() as t:
                ...                      # inject the fault at trials.rng-chosen moments, check invariants
                t.outcome = "new version serving"
                t.measure("gap_s", 0.8)

A trial that raises is recorded as ``failed: <reason>`` and the exception goes on (the test fails);
the results file is written in any case when the ``with Trials`` block ends.

How many trials: ``EDGEFLEET_FAULT_TRIALS`` is ``quick`` (the default: a few trials, the CI run),
``full`` (the counts the reliability report is made from) or a number. Where: results are written as
``<name>.json`` into ``EDGEFLEET_FAULT_RESULTS`` when it is set (``make faults`` sets it), nowhere
otherwise. ``EDGEFLEET_FAULT_SEED`` fixes the random timing (it is recorded in the results).

Results file shape (one JSON object per file; the security tests write the same shape), read by
:mod:`edgefleet.testing.reliability` to make ``docs/reliability.md``::

    {
      "name": "agent SIGKILL at a random point of an update",   # one row of the report
      "kind": "fault",              # or "attack"
      "trials": 100,                # trials run
      "outcomes": {"new version serving": 71, "old version serving": 29},   # outcome -> count
      "data_lost": 0,               # items lost over all trials (events, requests...; the goal is 0)
      "notes": "what was checked in each trial",
      # optional:
      "failed": 0,                  # trials whose outcome starts with "failed"
      "measurements": {"gap_s": {"n": 20, "min": .., "median": .., "p95": .., "max": ..}},
      "mode": "full", "seed": 123, "planned": 100, "started": "...", "finished": "...",
      "machine": {"kernel": "...", "cpus": 2, "python": "3.11.2", "edgefleet": "0.1.0"}
    }

Faults: :func:`kill` (a signal to a process, waited for), :class:`NetnsLink` (a network namespace
joined by a veth pair; ``partition()`` / ``heal()``, ``netem()`` where the kernel has it),
:func:`tmpfs` and :func:`fill` (a small filesystem, filled up), :class:`PostgresCluster` (a
throwaway PostgreSQL cluster to restart). Everything made is removed on exit, also after a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from edgefleet.errors import InvalidInputError, OperationFailedError, UnsupportedError

__all__ = [
    "RESULTS_ENV",
    "SEED_ENV",
    "TRIALS_ENV",
    "FaultUnavailableError",
    "NetnsLink",
    "PostgresCluster",
    "Trial",
    "Trials",
    "fill",
    "free_port",
    "kill",
    "machine_info",
    "netem_available",
    "tmpfs",
    "trial_count",
    "trial_mode",
]

TRIALS_ENV = "EDGEFLEET_FAULT_TRIALS"
RESULTS_ENV = "EDGEFLEET_FAULT_RESULTS"
SEED_ENV = "EDGEFLEET_FAULT_SEED"


class FaultUnavailableError(UnsupportedError):
    """This machine cannot inject the fault (a kernel feature or a tool is missing)."""

    default_code = "faults.unavailable"


def _run(argv: Sequence[str], *, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and r.returncode != 0:
        raise OperationFailedError(
            f"{' '.join(argv)}: exit {r.returncode}: {(r.stderr or r.stdout).strip()[:300]}",
            code="faults.command_failed",
        )
    return r


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- trials -------------------------------------------------------------------------------------


def trial_mode() -> str:
    """``quick``, ``full`` or a number, from ``EDGEFLEET_FAULT_TRIALS``."""
    raw = os.environ.get(TRIALS_ENV, "quick").strip().lower() or "quick"
    if raw not in {"quick", "full"} and not raw.isdigit():
        raise InvalidInputError(
            f"{TRIALS_ENV}={raw!r}: use quick, full or a number of trials", field=TRIALS_ENV
        )
    return raw


def trial_count(*, quick: int, full: int) -> int:
    """How many trials of one fault to run in this mode."""
    mode = trial_mode()
    if mode == "quick":
        return quick
    if mode == "full":
        return full
    return max(1, int(mode))


def machine_info() -> dict[str, Any]:
    import edgefleet

    return {
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "edgefleet": edgefleet.__version__,
    }


@dataclass
class Trial:
    """One run of a fault: what the test saw (``outcome``), what it measured, what was lost."""

    index: int
    outcome: str = ""
    data_lost: int = 0
    measures: dict[str, float] = field(default_factory=dict)

    def measure(self, name: str, value: float) -> None:
        self.measures[name] = float(value)


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return {
        "n": len(ordered),
        "min": round(ordered[0], 4),
        "median": round(statistics.median(ordered), 4),
        "p95": round(p95, 4),
        "max": round(ordered[-1], 4),
    }


class Trials:
    """The trials of one fault; the results file is written when the ``with`` block ends."""

    def __init__(
        self,
        name: str,
        *,
        planned: int,
        kind: str = "fault",
        notes: str = "",
        results_dir: Path | None = None,
        seed: int | None = None,
    ) -> None:
        if kind not in {"fault", "attack"}:
            raise InvalidInputError(f"kind {kind!r}: use fault or attack", field="kind")
        self.name, self.kind, self.notes, self.planned = name, kind, notes, planned
        env_dir = os.environ.get(RESULTS_ENV)
        self.results_dir = results_dir or (Path(env_dir) if env_dir else None)
        env_seed = os.environ.get(SEED_ENV)
        self.seed = seed if seed is not None else int(env_seed) if env_seed else secrets.randbelow(2**31)
        self.rng = random.Random(self.seed)  # noqa: S311 - timing of faults, not cryptography
        self.done: list[Trial] = []
        self.started = datetime.now(UTC)
        self.path: Path | None = None

    def __enter__(self) -> Trials:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.write()

    @contextlib.contextmanager
    def trial(self) -> Iterator[Trial]:
        t = Trial(len(self.done) + 1)
        try:
            yield t
        except BaseException as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            t.outcome = f"failed: {type(exc).__name__}: {first}"
            raise
        finally:
            if not t.outcome:
                t.outcome = "done"
            self.done.append(t)

    def result(self) -> dict[str, Any]:
        measures: dict[str, list[float]] = {}
        for t in self.done:
            for k, v in t.measures.items():
                measures.setdefault(k, []).append(v)
        outcomes = Counter(t.outcome for t in self.done)
        return {
            "name": self.name,
            "kind": self.kind,
            "trials": len(self.done),
            "outcomes": dict(sorted(outcomes.items())),
            "data_lost": sum(t.data_lost for t in self.done),
            "failed": sum(n for o, n in outcomes.items() if o.startswith("failed")),
            "notes": self.notes,
            "measurements": {k: _summary(v) for k, v in sorted(measures.items())},
            "mode": trial_mode(),
            "planned": self.planned,
            "seed": self.seed,
            "started": self.started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "finished": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": machine_info(),
        }

    def write(self) -> Path | None:
        """Write ``<results_dir>/<name>.json`` (no-op without a results directory)."""
        if self.results_dir is None:
            return None
        self.results_dir.mkdir(parents=True, exist_ok=True)
        slug = "".join(c if c.isalnum() else "-" for c in self.name.lower()).strip("-")
        while "--" in slug:
            slug = slug.replace("--", "-")
        self.path = self.results_dir / f"{slug}.json"
        self.path.write_text(json.dumps(self.result(), indent=1) + "\n")
        return self.path


# -- processes ----------------------------------------------------------------------------------


def kill(proc: subprocess.Popen[Any] | int, sig: int = signal.SIGKILL, *, timeout: float = 30) -> None:
    """Send ``sig`` to a child (waited for) or to a pid (waited for until it is gone)."""
    if isinstance(proc, subprocess.Popen):
        if proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(timeout=timeout)
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc, sig)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.kill(proc, 0)
        except ProcessLookupError:
            return
        if _zombie(proc):
            return
        time.sleep(0.02)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


# -- network ------------------------------------------------------------------------------------


def netem_available() -> tuple[bool, str]:
    """Whether ``tc qdisc ... netem`` works on this kernel, and why not (tried on a scratch veth)."""
    if shutil.which("tc") is None or shutil.which("ip") is None:
        return False, "the 'tc' or 'ip' executable is missing"
    with NetnsLink() as link:
        r = _run(["tc", "qdisc", "add", "dev", link.host_if, "root", "netem", "delay", "1ms"], check=False)
        if r.returncode != 0:
            return False, f"tc netem: {(r.stderr or r.stdout).strip()} (kernel {platform.release()})"
    return True, ""


class NetnsLink:
    """A network namespace joined to this one by a veth pair on a private /30.

    ``host_ip`` is this side, ``ns_ip`` the namespace's side; run a process inside with
    ``[*link.exec_prefix, argv...]``. ``partition()`` takes the link down on both ends (packets are
    dropped, connections hang or fail); ``heal()`` brings it back. Removed on exit with every
    process still inside the namespace.
    """

    def __init__(self) -> None:
        tag = secrets.token_hex(4)
        self.ns = f"efns{tag}"
        self.host_if, self.ns_if = f"efh{tag}", f"efn{tag}"
        self.host_ip, self.ns_ip = self._subnet()
        self.partitioned = False

    @staticmethod
    def _subnet() -> tuple[str, str]:
        used = _run(["ip", "-4", "-o", "addr", "show"], check=False).stdout
        for _ in range(200):
            a, b, c = random.randint(200, 254), random.randint(0, 255), random.randrange(0, 256, 4)  # noqa: S311
            if f" 10.{a}.{b}." not in used:
                return f"10.{a}.{b}.{c + 1}", f"10.{a}.{b}.{c + 2}"
        raise FaultUnavailableError("no free 10.x.y.z/30 for a veth pair")

    @property
    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.ns]

    def __enter__(self) -> NetnsLink:
        if shutil.which("ip") is None:
            raise FaultUnavailableError("the 'ip' executable (iproute2) is missing")
        try:
            _run(["ip", "netns", "add", self.ns])
            _run(["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if])
            _run(["ip", "link", "set", self.ns_if, "netns", self.ns])
            _run(["ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if])
            _run(["ip", "-n", self.ns, "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if])
            _run(["ip", "-n", self.ns, "link", "set", "lo", "up"])
            self.heal()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def partition(self) -> None:
        _run(["ip", "link", "set", self.host_if, "down"])
        _run(["ip", "-n", self.ns, "link", "set", self.ns_if, "down"])
        self.partitioned = True

    def heal(self) -> None:
        _run(["ip", "link", "set", self.host_if, "up"])
        _run(["ip", "-n", self.ns, "link", "set", self.ns_if, "up"])
        self.partitioned = False

    def netem(self, *, delay_ms: float = 0, jitter_ms: float = 0, loss_pct: float = 0) -> None:
        """Delay and loss on both ends (``FaultUnavailableError`` where the kernel has no netem)."""
        spec = ["delay", f"{delay_ms:g}ms", f"{jitter_ms:g}ms", "loss", f"{loss_pct:g}%"]
        for prefix, dev in (([], self.host_if), (["-n", self.ns], self.ns_if)):
            r = _run(["tc", *prefix, "qdisc", "replace", "dev", dev, "root", "netem", *spec], check=False)
            if r.returncode != 0:
                raise FaultUnavailableError(f"tc netem: {(r.stderr or r.stdout).strip()}")

    def close(self) -> None:
        pids = _run(["ip", "netns", "pids", self.ns], check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ValueError):
                kill(int(pid), signal.SIGKILL, timeout=10)
        _run(["ip", "link", "del", self.host_if], check=False)
        _run(["ip", "netns", "del", self.ns], check=False)


# -- disks --------------------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``"16m"``) mounted on ``path`` (made if missing), unmounted on exit."""
    path.mkdir(parents=True, exist_ok=True)
    _run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)])
    try:
        yield path
    finally:
        if _run(["umount", str(path)], check=False).returncode != 0:
            _run(["umount", "-l", str(path)], check=False)


def fill(directory: Path, *, leave: int = 0, name: str = ".filler") -> Path:
    """Fill the filesystem of ``directory`` up to ``leave`` free bytes; delete the file to free it."""
    filler = directory / name
    block = b"\0" * (1 << 16)
    with filler.open("ab") as f:
        while True:
            free = os.statvfs(directory).f_bavail * os.statvfs(directory).f_frsize
            if free <= leave:
                break
            try:
                f.write(block[: max(1, min(len(block), free - leave))])
                f.flush()
            except OSError:
                break
    return filler


# -- PostgreSQL ---------------------------------------------------------------------------------


class PostgresCluster:
    """A throwaway PostgreSQL cluster (initdb in a temp dir, on a free port), to stop and restart.

    Runs as the ``postgres`` user (PostgreSQL refuses root); ``url`` reaches its ``postgres``
    database with trust auth on 127.0.0.1. ``restart(mode)`` is ``pg_ctl restart -m fast|immediate``.
    """

    def __init__(self, *, bindir: Path | None = None, user: str = "postgres") -> None:
        self.bindir = bindir or self.find_bindir()
        self.user = user
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="ef-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @staticmethod
    def find_bindir() -> Path:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parent.parent.name)
        if not found:
            raise FaultUnavailableError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
        return found[-1].parent

    def _as_user(self, *argv: str) -> list[str]:
        return ["runuser", "-u", self.user, "--", *argv] if os.geteuid() == 0 else list(argv)

    def __enter__(self) -> PostgresCluster:
        try:
            if os.geteuid() == 0:
                shutil.chown(self.dir, self.user)
            _run(
                self._as_user(
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                ),
                timeout=180,
            )
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} -c fsync=on"
        )
        return _run(
            self._as_user(
                str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", opts, *args
            ),
            check=check,
            timeout=120,
        )

    def start(self) -> None:
        self._ctl("-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-w", "-m", mode, "stop")

    def restart(self, mode: str = "fast") -> None:
        self._ctl("-w", "-m", mode, "restart")

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._ctl("-w", "-m", "immediate", "stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
