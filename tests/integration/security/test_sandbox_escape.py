"""Escape attempts from inside a workload started by `edgefleet run`: each must fail, precisely.

From inside (as the workload user, with ``--network none``): write outside its directories, see or
signal host processes, gain privileges (a setuid-root binary, ``unshare -r``, setuid(0), mounts,
device nodes, chroot), and reach the host or the network. The host side checks that nothing it
can observe changed: the files, its listening sockets, its cgroups. The same for the podman
backend with a busybox root file system, where it applies.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.probe.cgroupfs import cgroup_mode, cgroup_mounts
from edgefleet.testing.require import require, require_tool
from tests.integration.security.conftest import record

pytestmark = pytest.mark.integration

SYSTEM_PYTHON = "/usr/bin/python3"

PROBE = r"""
import ctypes, errno, json, os, socket, stat, subprocess, sys
a = json.loads(sys.argv[1])
out = {}
libc = ctypes.CDLL(None, use_errno=True)

def err(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    except Exception as e:
        return type(e).__name__

def cerr(rc):
    return "ok" if rc == 0 else errno.errorcode.get(ctypes.get_errno(), "?")

def write(p):
    with open(p, "w") as f:
        f.write("escaped")

# 1. write outside its directories
out["write_host_dir"] = err(lambda: write(a["host_file"]))
out["write_etc"] = err(lambda: write("/etc/edgefleet-escape"))
out["write_usr"] = err(lambda: write("/usr/edgefleet-escape"))
out["write_proc_sys"] = err(lambda: write("/proc/sys/kernel/hostname"))
out["mkdir_cgroup"] = err(lambda: os.mkdir(a["cgroup_probe"]))
out["mknod_disk"] = err(lambda: os.mknod("/tmp/disk", 0o600 | stat.S_IFBLK, os.makedev(8, 0)))
os.makedirs("/tmp/m", exist_ok=True)
out["mount_tmpfs"] = cerr(libc.mount(b"none", b"/tmp/m", b"tmpfs", 0, None))
out["remount_root_rw"] = cerr(libc.mount(b"none", b"/", None, 32 | 4096, None))  # MS_REMOUNT|MS_BIND
out["chroot"] = err(lambda: os.chroot("/tmp"))
# 2. host processes
out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
out["host_pid_visible"] = os.path.exists(f"/proc/{a['host_pid']}")
out["signal_host_pid"] = err(lambda: os.kill(a["host_pid"], 0))
out["pid1_cmd"] = open("/proc/1/cmdline", "rb").read().split(b"\0")[0].decode(errors="replace")
# 3. privileges
r = subprocess.run([a["setuid_id"], "-u"], capture_output=True, text=True)
out["setuid_binary_euid"] = r.stdout.strip() or r.stderr.strip()
r = subprocess.run(["unshare", "-r", "id", "-u"], capture_output=True, text=True)
out["unshare_r"] = {"rc": r.returncode, "out": r.stdout.strip()}
out["unshare_user_syscall"] = cerr(libc.unshare(0x10000000))  # CLONE_NEWUSER
out["setuid_0"] = err(lambda: os.setuid(0))
out["setgroups_0"] = err(lambda: os.setgroups([0]))
st = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
out["uid"] = os.getuid()
out["no_new_privs"] = st["NoNewPrivs"].strip()
out["cap_eff"] = st["CapEff"].strip()
out["cap_bnd"] = st["CapBnd"].strip()
# 4. network
def connect(host, port):
    s = socket.create_connection((host, port), timeout=3)
    s.close()
out["ifaces"] = [n for _, n in socket.if_nameindex()]
out["connect_host_loopback"] = err(lambda: connect("127.0.0.1", a["loopback_port"]))
out["connect_host_ip"] = err(lambda: connect(a["host_ip"], a["host_ip_port"]))
out["connect_postgres"] = err(lambda: connect("127.0.0.1", 5432))
out["connect_internet"] = err(lambda: connect("1.1.1.1", 53))
out["dns"] = err(lambda: socket.getaddrinfo("example.com", 80))
with open(a["out"], "w") as f:
    json.dump(out, f)
"""


class Listener:
    """A host TCP socket that counts the connections it accepts."""

    def __init__(self, host: str) -> None:
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def _host_ip() -> str:
    for _, name in socket.if_nameindex():
        if name == "lo":
            continue
        out = subprocess.run(
            ["ip", "-4", "-o", "addr", "show", name], capture_output=True, text=True, check=False
        )
        for word in out.stdout.split():
            if "/" in word and word[0].isdigit():
                return word.split("/")[0]
    return ""


@pytest.fixture
def escape_dirs(tmp_path: Path) -> Iterator[dict[str, Path]]:
    require(os.geteuid() == 0, "root (namespaces, a setuid-root binary)")
    require(cgroup_mode(cgroup_mounts()) != "none", "a mounted cgroup hierarchy")
    require(Path(SYSTEM_PYTHON).exists(), SYSTEM_PYTHON)
    require_tool("unshare")
    tag = uuid.uuid4().hex[:10]
    host_dir = Path("/var/tmp") / f"ef-escape-{tag}"  # not under /tmp, which the sandbox replaces
    host_dir.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    tools = tmp_path / "tools"
    tools.mkdir()
    shutil.copy2("/usr/bin/id", tools / "id")
    os.chown(tools / "id", 0, 0)
    (tools / "id").chmod(0o4755)  # setuid root
    cgroup_probe = Path("/sys/fs/cgroup") / f"ef-escape-{tag}"
    tmp_path.chmod(0o755)
    try:
        yield {"host_dir": host_dir, "out": out, "tools": tools, "cgroup_probe": cgroup_probe}
    finally:
        shutil.rmtree(host_dir, ignore_errors=True)
        if cgroup_probe.exists():
            cgroup_probe.rmdir()


def test_native_sandbox_escape_attempts_all_fail(escape_dirs: dict[str, Path]) -> None:
    host_ip = _host_ip()
    loop, on_ip = Listener("127.0.0.1"), Listener(host_ip or "127.0.0.1")
    args = {
        "host_file": str(escape_dirs["host_dir"] / "escaped"),
        "cgroup_probe": str(escape_dirs["cgroup_probe"]),
        "host_pid": os.getpid(),
        "setuid_id": str(escape_dirs["tools"] / "id"),
        "loopback_port": loop.port,
        "host_ip": host_ip or "127.0.0.1",
        "host_ip_port": on_ip.port,
        "out": str(escape_dirs["out"] / "out.json"),
    }
    try:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "edgefleet",
                "run",
                "--network",
                "none",
                "--user",
                "nobody",
                "--rw",
                str(escape_dirs["out"]),
                "--ro",
                str(escape_dirs["tools"]),
                "--cgroup-parent",
                f"ef-escape-{uuid.uuid4().hex[:8]}",
                "--",
                SYSTEM_PYTHON,
                "-c",
                PROBE,
                json.dumps(args),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        )
    finally:
        loop.close()
        on_ip.close()
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads((escape_dirs["out"] / "out.json").read_text())
    expected = {
        # file system: read-only everywhere but its own directories; no mounts, nodes, chroot
        "write_host_dir": "EROFS",
        "write_etc": "EROFS",
        "write_usr": "EROFS",
        "write_proc_sys": "EACCES",  # owned by the host's root, and the workload is nobody
        "mkdir_cgroup": "ENOENT",  # no cgroup file system inside
        "mknod_disk": "EPERM",
        "mount_tmpfs": "EPERM",
        "remount_root_rw": "EPERM",
        "chroot": "EPERM",
        # processes: its own PID namespace, nothing of the host's
        "pids": [1],
        "host_pid_visible": False,
        "signal_host_pid": "ESRCH",
        "pid1_cmd": SYSTEM_PYTHON,
        # privileges: nobody, no capabilities, no_new_privs (a setuid binary gains nothing)
        "setuid_binary_euid": "65534",
        "unshare_user_syscall": "EPERM",
        "setuid_0": "EPERM",
        "setgroups_0": "EPERM",
        "uid": 65534,
        "no_new_privs": "1",
        "cap_eff": "0000000000000000",
        "cap_bnd": "0000000000000000",
        # network: its own namespace with loopback only
        "ifaces": ["lo"],
        "connect_host_loopback": "ECONNREFUSED",  # its own loopback: nothing listens there
        "connect_host_ip": "ENETUNREACH",
        "connect_postgres": "ECONNREFUSED",
        "connect_internet": "ENETUNREACH",
    }
    wrong = {k: (out.get(k), v) for k, v in expected.items() if out.get(k) != v}
    assert out["unshare_r"]["rc"] != 0, out["unshare_r"]  # no user namespace, so no fake root either
    assert out["dns"] in ("-2", "-3", "-5"), out["dns"]  # EAI_NONAME / EAI_AGAIN / EAI_NODATA: no resolver
    # the host saw nothing
    assert not (escape_dirs["host_dir"] / "escaped").exists()
    assert not escape_dirs["cgroup_probe"].exists()
    assert loop.accepted == 0
    assert on_ip.accepted == 0
    assert not Path("/etc/edgefleet-escape").exists()
    attempts = len(expected) + 2
    record(
        "sandbox-escape-native",
        trials=attempts,
        outcomes={"blocked": attempts - len(wrong), "escaped_or_unexpected": len(wrong)},
        notes="edgefleet run --network none --user nobody: writes outside, mounts, mknod, chroot, host "
        "PIDs, setuid-root binary, unshare -r, setuid(0), host loopback/IP, PostgreSQL, internet, DNS",
    )
    assert not wrong, wrong


BUSYBOX_PROBE = (
    "echo x > /etc/escaped 2>/dev/null && echo etc=ok || echo etc=denied; "
    "echo x > /bin/escaped 2>/dev/null && echo bin=ok || echo bin=denied; "
    "[ -e /proc/$HOSTPID ] && echo hostproc=visible || echo hostproc=absent; "
    "echo maxpid=$(ls /proc | grep '^[0-9]' | sort -n | tail -1); "
    "kill -0 $HOSTPID 2>/dev/null && echo hostpid=ok || echo hostpid=denied; "
    "unshare -r id -u >/dev/null 2>&1 && echo unshare=ok || echo unshare=denied; "
    "mount -t tmpfs none /tmp 2>/dev/null && echo mount=ok || echo mount=denied; "
    "mknod /tmp/sda b 8 0 2>/dev/null && echo mknod=ok || echo mknod=denied; "
    "echo nets=$(ls /sys/class/net); "
    "nc -w 3 127.0.0.1 $PORT </dev/null 2>/dev/null && echo loop=ok || echo loop=denied; "
    "nc -w 3 $HOSTIP $IPPORT </dev/null 2>/dev/null && echo hostip=ok || echo hostip=denied; "
    "grep -E '^(NoNewPrivs|CapEff)' /proc/self/status; echo uid=$(id -u)"
)


def test_podman_sandbox_escape_attempts_all_fail(tmp_path: Path) -> None:
    require(os.geteuid() == 0, "root (rootful podman)")
    require_tool("podman")
    require_tool("runc")
    require(Path("/bin/busybox").exists(), "busybox-static (/bin/busybox)")
    root = tmp_path / "rootfs"
    for d in ("bin", "proc", "sys", "dev", "tmp", "etc"):
        (root / d).mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    for applet in (
        "sh",
        "echo",
        "ls",
        "grep",
        "kill",
        "unshare",
        "id",
        "mount",
        "mknod",
        "nc",
        "sort",
        "tail",
    ):
        (root / "bin" / applet).symlink_to("busybox")
    tmp_path.chmod(0o755)
    host_ip = _host_ip()
    loop, on_ip = Listener("127.0.0.1"), Listener(host_ip or "127.0.0.1")
    script = (
        f"HOSTPID={os.getpid()} PORT={loop.port} HOSTIP={host_ip or '127.0.0.1'} IPPORT={on_ip.port}; "
        + BUSYBOX_PROBE
    )
    try:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "edgefleet",
                "run",
                "--backend",
                "podman",
                "--rootfs",
                str(root),
                "--network",
                "none",
                "--",
                "/bin/sh",
                "-c",
                script,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        )
    finally:
        loop.close()
        on_ip.close()
    assert r.returncode == 0, r.stdout + r.stderr
    lines = set(r.stdout.split("\n"))
    expected = {
        "etc=denied",
        "bin=denied",
        "hostproc=absent",
        "hostpid=denied",
        "unshare=denied",
        "mount=denied",
        "mknod=denied",
        "nets=lo",
        "loop=denied",
        "hostip=denied",
        "NoNewPrivs:\t1",
        "CapEff:\t0000000000000000",
        "uid=65534",
    }
    missing = expected - lines
    maxpid = next(int(ln.split("=")[1]) for ln in lines if ln.startswith("maxpid="))
    assert maxpid < 100, r.stdout  # its own PID namespace: a handful of its own processes
    assert not (root / "etc" / "escaped").exists()
    assert loop.accepted == 0
    assert on_ip.accepted == 0
    record(
        "sandbox-escape-podman",
        trials=len(expected),
        outcomes={"blocked": len(expected) - len(missing), "escaped_or_unexpected": len(missing)},
        notes="edgefleet run --backend podman (busybox rootfs) --network none",
    )
    assert not missing, (missing, r.stdout)
