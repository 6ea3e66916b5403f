"""What runs after the fork: the shim (in the new PID namespace's parent) and the workload's setup.

The shim is a fork of the caller that unshares the PID namespace, forks the workload (PID 1 of the
new namespace), hands the workload's PID back through the sync pipe, copies its output into the
rotating log when asked, waits for it and writes ``exit.json``. It lives in the caller's session
and mount namespace but outside its cgroup, so it survives a supervisor restart and never counts
against the workload's limits.

The workload child attaches itself to its cgroup first, then unshares mount, UTS, IPC (and
network), builds its file system view, drops the bounding set, switches user, sets no_new_privs,
loads the seccomp filter and execs. Any failure is written to the sync pipe before ``_exit(127)``.
"""

from __future__ import annotations

import json
import os
import signal
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from edgefleet.sandbox import syscalls as sc
from edgefleet.sandbox.logs import RotatingWriter, pump
from edgefleet.sandbox.seccomp import load_deny_list
from edgefleet.sandbox.spec import SandboxSpec

__all__ = ["ChildPlan", "run_shim"]

EXEC_FAILED = 127
_TMP = Path("/tmp")  # noqa: S108 - the sandbox's own private tmpfs, mounted fresh
_DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")


@dataclass(frozen=True)
class ChildPlan:
    """Everything the children need, resolved in the parent before the fork."""

    spec: SandboxSpec
    procs_files: tuple[Path, ...]
    exit_file: Path
    sync_fd: int
    log: tuple[Path, int, int] | None  # path, max bytes, backups
    seccomp: bool


def run_shim(plan: ChildPlan) -> None:
    """Body of the shim process; never returns."""
    code = 0
    try:
        os.setsid()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_IGN)
        sc.unshare(sc.CLONE_NEWPID)
        out_r = out_w = -1
        if plan.log is not None:
            out_r, out_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            if out_w >= 0:
                os.close(out_r)
            _workload(plan, out_w)
        os.write(plan.sync_fd, f"P{pid}\n".encode())
        os.close(plan.sync_fd)
        if plan.log is not None:
            os.close(out_w)
            path, max_bytes, backups = plan.log
            writer = RotatingWriter(path, max_bytes, backups)
            pump([out_r], writer)
            writer.close()
        _, status = os.waitpid(pid, 0)
        tmp = plan.exit_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": pid, "status": status, "ended": time.time()}))
        tmp.replace(plan.exit_file)
    except BaseException:  # noqa: BLE001 - the shim must never return into the caller's code
        code = 1
        try:
            os.write(plan.sync_fd, f"Eshim: {traceback.format_exc(limit=3)}".encode())
        except OSError:
            code = 2
    finally:
        os._exit(code)


def _workload(plan: ChildPlan, out_w: int) -> None:
    """Body of the workload child: attach, isolate, drop privileges, exec. Never returns."""
    step = "attach to the cgroup"
    try:
        for procs in plan.procs_files:
            procs.write_text("0")
        for sig in (
            signal.SIGINT,
            signal.SIGTERM,
            signal.SIGHUP,
            signal.SIGQUIT,
            signal.SIGPIPE,
            signal.SIGXFSZ,
        ):
            signal.signal(sig, signal.SIG_DFL)
        iso = plan.spec.isolation
        if out_w >= 0:
            devnull = os.open("/dev/null", os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            os.close(out_w)
            os.close(devnull)
        step = "unshare the mount, UTS, IPC and network namespaces"
        flags = sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC
        if iso.network == "none":
            flags |= sc.CLONE_NEWNET
        sc.unshare(flags)
        step = "set the hostname"
        sc.sethostname(iso.hostname)
        if iso.network == "none":
            step = "bring up the loopback interface"
            sc.loopback_up()
        step = "build the file system view"
        _mounts(plan)
        step = "drop the capability bounding set"
        sc.drop_bounding_set()
        step = f"switch to user {iso.user.name} ({iso.user.uid}:{iso.user.gid})"
        os.setgroups([])
        os.setresgid(iso.user.gid, iso.user.gid, iso.user.gid)
        os.setresuid(iso.user.uid, iso.user.uid, iso.user.uid)
        step = "set no_new_privs"
        sc.set_no_new_privs()
        if plan.seccomp:
            step = "load the seccomp deny-list"
            load_deny_list()
        step = f"change directory to {iso.workdir}"
        os.chdir(iso.workdir)
        step = f"execute {plan.spec.argv[0]!r}"
        os.execvpe(  # noqa: S606 - argv as given by the operator, never through a shell
            plan.spec.argv[0],
            list(plan.spec.argv),
            plan.spec.environment(),
        )
    except BaseException as exc:  # noqa: BLE001 - report whatever stopped the exec, then leave
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        try:
            os.write(plan.sync_fd, f"Ecould not {step}: {detail}".encode())
        finally:
            os._exit(EXEC_FAILED)


def _mounts(plan: ChildPlan) -> None:
    iso = plan.spec.isolation
    binds = [(d, False) for d in iso.ro] + [(d, True) for d in iso.rw]
    # O_PATH handles survive the mounts that hide their paths (a state dir under /tmp, say)
    handles = [(os.open(d, os.O_PATH | os.O_DIRECTORY), d, rw) for d, rw in binds]
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    sc.remount_tree_readonly("/")
    sc.mount("tmpfs", str(_TMP), "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, f"mode=1777,size={iso.tmp_size}")
    for fd, path, writable in handles:
        if path.is_relative_to(_TMP):
            path.mkdir(parents=True, exist_ok=True)
        sc.mount(f"/proc/self/fd/{fd}", str(path), None, sc.MS_BIND | sc.MS_REC)
        if writable:
            sc.make_writable(str(path))
        os.close(fd)
    _dev(plan)
    if iso.network == "none":
        # sysfs shows the network namespace of whoever mounts it: remount it for the new one
        sc.mount("sysfs", "/sys", "sysfs", sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
    sc.mount("proc", "/proc", "proc", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)


def _dev(plan: ChildPlan) -> None:
    """A tmpfs /dev with the standard nodes and the allowed devices bound from the host's /dev."""
    staging = _TMP / ".edgefleet-dev"
    staging.mkdir(mode=0o755)
    sc.mount("tmpfs", str(staging), "tmpfs", sc.MS_NOSUID, "mode=755,size=1m")
    nodes = [Path("/dev", n) for n in _DEV_NODES] + [Path(d.path) for d in plan.spec.limits.devices]
    for node in nodes:
        if not node.exists():
            continue
        target = staging / node.relative_to("/dev")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()
        sc.mount(str(node), str(target), None, sc.MS_BIND)
    (staging / "pts").mkdir(mode=0o755)
    (staging / "shm").mkdir(mode=0o755)
    sc.mount(
        "devpts",
        str(staging / "pts"),
        "devpts",
        sc.MS_NOSUID | sc.MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=620",
    )
    sc.mount("tmpfs", str(staging / "shm"), "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "mode=1777,size=64m")
    (staging / "ptmx").symlink_to("pts/ptmx")
    for name, target_path in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        (staging / name).symlink_to(target_path)
    sc.mount(str(staging), "/dev", None, sc.MS_MOVE)
    staging.rmdir()
