"""Container backend: the same limits and isolation mapped onto ``podman run``.

Runs an OCI image or a root file system directory (``--rootfs``). Tuned for the layouts edge boards
have: ``--runtime runc`` (crun refuses hybrid cgroups), ``--cgroup-manager cgroupfs`` (no systemd as
PID 1) and explicit ``--ulimit nofile``/``nproc`` (the defaults may exceed what the runtime may set).
Every container runs with ``--security-opt no-new-privileges --cap-drop ALL``, and :meth:`run` adds a
seccomp profile: podman's default (``/usr/share/containers/seccomp.json``) with the native sandbox's
deny-list on top (:data:`~edgefleet.sandbox.seccomp.DENIED_SYSCALLS`, refused with EPERM), since
podman's default lets a workload call ``unshare`` and create a user namespace.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgefleet.sandbox.cgroups.base import Unenforced, Usage
from edgefleet.sandbox.errors import SandboxFailedError, UnenforceableError
from edgefleet.sandbox.limits import CFS_PERIOD_US, Limits, weight_to_shares
from edgefleet.sandbox.report import RunReport
from edgefleet.sandbox.seccomp import DENIED_SYSCALLS
from edgefleet.sandbox.spec import SandboxSpec

__all__ = ["PODMAN_SECCOMP", "PodmanBackend", "PodmanTarget", "seccomp_profile"]

Runner = Callable[..., subprocess.CompletedProcess[str]]
PODMAN_SECCOMP = Path("/usr/share/containers/seccomp.json")


def seccomp_profile(base: Path = PODMAN_SECCOMP, denied: tuple[str, ...] = DENIED_SYSCALLS) -> dict[str, Any]:
    """Podman's default seccomp profile with ``denied`` taken out of every rule and refused (EPERM).

    Without a readable default profile: allow everything but ``denied`` (what the native sandbox does).
    """
    try:
        profile: dict[str, Any] = json.loads(base.read_text())
    except (OSError, ValueError):
        profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}
    drop = set(denied)
    rules = []
    for rule in profile.get("syscalls") or []:
        names = [n for n in rule.get("names", []) if n not in drop]
        if names:
            rules.append({**rule, "names": names})
    rules.append({"names": list(denied), "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM})
    return {**profile, "syscalls": rules}


@dataclass(frozen=True)
class PodmanTarget:
    """What the container runs from: an OCI ``image`` reference or a ``rootfs`` directory."""

    image: str | None = None
    rootfs: Path | None = None

    def __post_init__(self) -> None:
        if (self.image is None) == (self.rootfs is None):
            raise SandboxFailedError(
                "podman: give exactly one of an image or a rootfs", code="sandbox.podman_target"
            )


class PodmanBackend:
    """``podman run`` with the sandbox's limits; :meth:`run` waits and reports."""

    backend = "podman"

    def __init__(
        self,
        podman: str = "podman",
        *,
        runtime: str = "runc",
        cgroup_manager: str = "cgroupfs",
        nofile: int = 1024,
        nproc: int = 4096,
        runner: Runner = subprocess.run,
        seccomp_base: Path = PODMAN_SECCOMP,
    ) -> None:
        self.podman, self.runtime, self.cgroup_manager = podman, runtime, cgroup_manager
        self.seccomp_base = seccomp_base
        self.nofile, self.nproc, self._run = nofile, nproc, runner

    def available(self) -> str | None:
        """``None`` when podman and its runtime are on PATH, else what is missing."""
        for tool in (self.podman, self.runtime):
            if shutil.which(tool) is None:
                return f"'{tool}' is not installed (apt-get install podman runc)"
        return None

    def unenforceable(self, limits: Limits) -> list[Unenforced]:
        """Limits that podman cannot express here."""
        out = []
        if limits.memory_high is not None:
            out.append(Unenforced("memory-high", "podman has no memory.high setting"))
        if limits.io_weight is not None:
            out.append(Unenforced("io-weight", "not mapped for podman (blkio weight needs CFQ/BFQ)"))
        return out

    def command(  # noqa: PLR0912 - one branch per limit
        self, spec: SandboxSpec, target: PodmanTarget, container: str, *, seccomp: Path | None = None
    ) -> list[str]:
        """The full ``podman run`` argv for ``spec`` (``seccomp``: a profile file to load)."""
        lim, iso = spec.limits, spec.isolation
        argv = [
            self.podman,
            "--runtime",
            self.runtime,
            "--cgroup-manager",
            self.cgroup_manager,
            "run",
            "--name",
            container,
            "--ulimit",
            f"nofile={self.nofile}:{self.nofile}",
            "--ulimit",
            f"nproc={self.nproc}:{self.nproc}",
            "--security-opt",
            "no-new-privileges",
            "--cap-drop",
            "ALL",
            "--network",
            iso.network,
            "--hostname",
            iso.hostname,
            "--user",
            f"{iso.user.uid}:{iso.user.gid}",
            "--read-only",
            "--tmpfs",
            f"/tmp:rw,size={iso.tmp_size},mode=1777",  # noqa: S108 - the container's private tmpfs
            "--workdir",
            str(iso.workdir),
        ]
        if lim.cpus is not None:
            argv += ["--cpu-period", str(CFS_PERIOD_US), "--cpu-quota", str(lim.cfs_quota_us())]
        if lim.cpuset_cpus is not None:
            argv += ["--cpuset-cpus", lim.cpuset_cpus]
        if lim.cpuset_mems is not None:
            argv += ["--cpuset-mems", lim.cpuset_mems]
        if lim.cpu_weight is not None:
            argv += ["--cpu-shares", str(weight_to_shares(lim.cpu_weight))]
        if lim.memory_max is not None:
            argv += ["--memory", str(lim.memory_max), "--memory-swap", str(lim.memory_max)]
        if lim.pids_max is not None:
            argv += ["--pids-limit", str(lim.pids_max)]
        for io in lim.io_max:
            dev = f"/dev/block/{io.device}"
            for key, flag in (
                ("rbps", "--device-read-bps"),
                ("wbps", "--device-write-bps"),
                ("riops", "--device-read-iops"),
                ("wiops", "--device-write-iops"),
            ):
                if getattr(io, key) is not None:
                    argv += [flag, f"{dev}:{getattr(io, key)}"]
        for device in lim.devices:
            argv += ["--device", f"{device.path}:{device.path}:{device.access}"]
        for d in iso.ro:
            argv += ["--volume", f"{d}:{d}:ro"]
        for d in iso.rw:
            argv += ["--volume", f"{d}:{d}:rw"]
        if not iso.seccomp:
            argv += ["--security-opt", "seccomp=unconfined"]
        elif seccomp is not None:
            argv += ["--security-opt", f"seccomp={seccomp}"]
        for key, value in (spec.env or {}).items():
            argv += ["--env", f"{key}={value}"]
        if target.rootfs is not None:
            argv += ["--rootfs", str(target.rootfs)]
        else:
            argv += [str(target.image)]
        return argv + list(spec.argv)

    def run(
        self, spec: SandboxSpec, target: PodmanTarget, *, strict: bool = False, timeout: float | None = None
    ) -> RunReport:
        """Run the container to its end (output passes through) and report, OOM included."""
        if (missing := self.available()) is not None:
            raise SandboxFailedError(f"podman backend: {missing}", code="sandbox.podman_missing")
        unenforced = self.unenforceable(spec.limits)
        if strict and unenforced:
            raise UnenforceableError(
                "strict: not enforceable here: " + "; ".join(f"{u.limit} ({u.reason})" for u in unenforced),
                limits=[u.limit for u in unenforced],
            )
        container = f"edgefleet-{spec.name}-{uuid.uuid4().hex[:8]}"
        fd, name = tempfile.mkstemp(prefix="edgefleet-seccomp-", suffix=".json")
        profile = Path(name)
        with os.fdopen(fd, "w") as f:
            json.dump(seccomp_profile(self.seccomp_base), f)
        argv = self.command(spec, target, container, seccomp=profile)
        started = time.monotonic()
        try:
            done = self._run(argv, check=False, timeout=timeout)
            state = self._inspect(container)
        finally:
            self._run([self.podman, "rm", "--force", "--ignore", container], check=False, capture_output=True)
            profile.unlink(missing_ok=True)
        duration = time.monotonic() - started
        if state is None:
            raise SandboxFailedError(
                f"podman could not start {spec.name!r} (exit {done.returncode})",
                code="sandbox.start_failed",
                name=spec.name,
            )
        code = int(state.get("ExitCode", done.returncode))
        oom = bool(state.get("OOMKilled"))
        status = (9 if oom else code - 128) if (oom or code > 128) else code << 8
        usage = Usage(oom_kills=1 if oom else 0)
        report = RunReport.from_status(
            name=spec.name,
            backend=self.backend,
            argv=list(spec.argv),
            status=status,
            usage=usage,
            duration_s=duration,
            cgroup_version=None,
            applied={"podman": " ".join(argv[: len(argv) - len(spec.argv)])},
            unenforced=unenforced,
            notes=[f"{u.limit}: not enforced ({u.reason})" for u in unenforced],
        )
        if state.get("Error"):
            report.error = str(state["Error"])
        if report.signal == 9 and not oom and spec.limits.memory_max is not None:
            report.notes.append(
                "SIGKILL under a memory limit: likely the OOM killer on a child process "
                "(podman reports OOMKilled only for the container's main process)"
            )
        return report

    def _inspect(self, container: str) -> dict[str, Any] | None:
        done = self._run(
            [self.podman, "inspect", "--format", "{{json .State}}", container],
            check=False,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            return None
        try:
            state = json.loads(done.stdout)
        except ValueError:
            return None
        return state if isinstance(state, dict) else None
