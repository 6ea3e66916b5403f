"""Users, isolation settings, rotating logs, exit reasons and the podman argv."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edgefleet.errors import InvalidInputError
from edgefleet.sandbox import Isolation, Limits, SandboxSpec, Usage, resolve_user
from edgefleet.sandbox.errors import SandboxNotFoundError
from edgefleet.sandbox.limits import DeviceRule
from edgefleet.sandbox.logs import RotatingWriter, tail
from edgefleet.sandbox.podman import PodmanBackend, PodmanTarget
from edgefleet.sandbox.report import exit_reason

pytestmark = pytest.mark.unit


def test_users_resolve_from_passwd(tmp_path: Path) -> None:
    """Names come from the given passwd file; numbers pass through; unknown names are refused."""
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0::/root:/bin/sh\nedge:x:990:991::/nonexistent:/usr/sbin/nologin\n")
    assert resolve_user("edge", passwd).uid == 990
    assert resolve_user("edge", passwd).gid == 991
    assert resolve_user("1000:1001", passwd) == resolve_user("1000:1001")
    assert resolve_user("1000").gid == 1000
    with pytest.raises(SandboxNotFoundError, match="'ghost' does not exist"):
        resolve_user("ghost", passwd)
    with pytest.raises(SandboxNotFoundError):
        resolve_user("no-such-user-here")


def test_isolation_and_spec_validation(tmp_path: Path) -> None:
    """Hostname, directories, names and an empty command are checked up front."""
    with pytest.raises(InvalidInputError, match="hostname"):
        Isolation(hostname="bad name")
    with pytest.raises(SandboxNotFoundError, match="rw"):
        Isolation(rw=(tmp_path / "missing",))
    with pytest.raises(InvalidInputError, match="name"):
        SandboxSpec("../escape", ("true",))
    with pytest.raises(InvalidInputError, match="nothing to run"):
        SandboxSpec("ok", ())
    env = SandboxSpec("ok", ("true",), isolation=Isolation(hostname="box")).environment()
    assert env["HOME"] == "/tmp"
    assert env["HOSTNAME"] == "box"


def test_rotating_log_is_bounded_and_tail_spans_files(tmp_path: Path) -> None:
    """Past max_bytes the file rotates; only `backups` old files stay; tail reads across them."""
    log = tmp_path / "w.log"
    writer = RotatingWriter(log, max_bytes=100, backups=2)
    for i in range(40):
        writer.write(f"line {i:03d}\n".encode())  # 9 bytes each
    writer.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["w.log", "w.log.1", "w.log.2"]
    assert all(p.stat().st_size <= 100 for p in tmp_path.iterdir())
    lines = tail(log, 5)
    assert lines == [f"line {i:03d}" for i in range(35, 40)]
    assert tail(log, 1000)[0] != "line 000"  # the oldest were dropped


def test_exit_reasons() -> None:
    """SIGKILL with an OOM kill in the group is OOM; a stop is 'stopped'; exit codes pass through."""
    oom = Usage(oom_kills=1)
    assert exit_reason(signal.SIGKILL, oom, stopped=False) == "oom"
    assert exit_reason(signal.SIGKILL, Usage(), stopped=False) == "signaled"
    assert exit_reason(signal.SIGTERM, Usage(), stopped=True) == "stopped"
    assert exit_reason(3 << 8, Usage(), stopped=False) == "exited"
    assert exit_reason(None, Usage(), stopped=False) == "lost"
    assert os.WEXITSTATUS(3 << 8) == 3


def test_podman_argv_carries_every_limit() -> None:
    """runc, cgroupfs, explicit ulimits, no-new-privileges, cap-drop ALL, network, memory, cpus, pids."""
    spec = SandboxSpec(
        "web",
        ("/bin/sh", "-c", "true"),
        Limits(
            cpus=0.5,
            cpuset_cpus="0",
            cpu_weight=100,
            memory_max=64 << 20,
            pids_max=32,
            devices=(DeviceRule("/dev/null", "c", 1, 3),),
        ),
        Isolation(network="none", hostname="box"),
    )
    argv = PodmanBackend().command(spec, PodmanTarget(rootfs=Path("/srv/rootfs")), "ctr")
    joined = " ".join(argv)
    for part in (
        "--runtime runc",
        "--cgroup-manager cgroupfs",
        "--ulimit nofile=1024:1024",
        "--ulimit nproc=4096:4096",
        "--security-opt no-new-privileges",
        "--cap-drop ALL",
        "--network none",
        "--hostname box",
        "--user 65534:65534",
        "--cpu-quota 50000",
        "--cpuset-cpus 0",
        "--cpu-shares 1024",
        f"--memory {64 << 20}",
        "--pids-limit 32",
        "--device /dev/null:/dev/null:rwm",
        "--rootfs /srv/rootfs /bin/sh -c true",
    ):
        assert part in joined, part
    with pytest.raises(Exception, match="exactly one"):
        PodmanTarget()


def test_run_help_documents_every_limit() -> None:
    """`edgefleet run --help` names every limit and isolation option."""
    r = subprocess.run(
        [sys.executable, "-m", "edgefleet", "run", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert r.returncode == 0, r.stderr
    for option in (
        "--cpus",
        "--cpuset",
        "--cpuset-mems",
        "--cpu-weight",
        "--memory",
        "--memory-high",
        "--pids",
        "--io-weight",
        "--io-max",
        "--device",
        "--network",
        "--user",
        "--ro",
        "--rw",
        "--strict",
        "--json",
        "--seccomp",
        "--rootfs",
    ):
        assert option in r.stdout, option


def test_bad_limit_exits_2_before_anything_starts() -> None:
    """An impossible limit is a one-line error with exit 2, no traceback."""
    r = subprocess.run(
        [sys.executable, "-m", "edgefleet", "run", "--memory", "12q", "--", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 2
    assert "memory" in r.stderr
    assert "Traceback" not in r.stderr


def test_podman_seccomp_profile_is_the_default_with_the_deny_list_on_top(tmp_path: Path) -> None:
    """Regression: podman's default profile allowed unshare (a user namespace, `unshare -r`)."""
    import errno as _errno
    import json

    from edgefleet.sandbox.podman import seccomp_profile
    from edgefleet.sandbox.seccomp import DENIED_SYSCALLS

    base = tmp_path / "seccomp.json"
    base.write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [
                    {"names": ["read", "unshare", "mount"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["bpf"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
                ],
            }
        )
    )
    prof = seccomp_profile(base)
    assert prof["defaultAction"] == "SCMP_ACT_ERRNO"
    assert prof["syscalls"][0] == {"names": ["read"], "action": "SCMP_ACT_ALLOW"}
    assert prof["syscalls"][-1] == {
        "names": list(DENIED_SYSCALLS),
        "action": "SCMP_ACT_ERRNO",
        "errnoRet": _errno.EPERM,
    }
    assert len(prof["syscalls"]) == 2  # the bpf-only rule is gone: the deny rule covers it
    fallback = seccomp_profile(tmp_path / "missing.json")
    assert fallback["defaultAction"] == "SCMP_ACT_ALLOW"
    assert "unshare" in fallback["syscalls"][-1]["names"]
    spec = SandboxSpec("w", ("/bin/true",), Limits(), Isolation())
    argv = PodmanBackend().command(spec, PodmanTarget(rootfs=tmp_path), "ctr", seccomp=base)
    assert f"seccomp={base}" in argv
