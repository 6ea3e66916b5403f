"""The native sandbox on the real kernel: limits hold, namespaces and privileges are as promised."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from edgefleet.sandbox import Isolation, Limits, Sandbox, SandboxSpec
from edgefleet.sandbox.errors import SandboxFailedError, UnenforceableError
from edgefleet.sandbox.limits import parse_device
from edgefleet.sandbox.report import RunReport
from edgefleet.sandbox.seccomp import seccomp_available
from edgefleet.testing.require import require

from .conftest import SYSTEM_PYTHON

pytestmark = pytest.mark.integration


def _py(sandbox: Sandbox, name: str, code: str, limits: Limits | None = None, **iso: object) -> RunReport:
    spec = SandboxSpec(name, (SYSTEM_PYTHON, "-c", code), limits or Limits(), Isolation(**iso))  # type: ignore[arg-type]
    return sandbox.start(spec).wait(timeout=60)


def _probe(sandbox: Sandbox, tmp_path: Path, code: str, **iso: object) -> dict[str, object]:
    """Run ``code`` (which sets ``out``) inside and return ``out`` as written to a rw directory."""
    out_dir = tmp_path / "out"
    out_dir.mkdir(exist_ok=True)
    out_dir.chmod(0o777)
    wrapper = (
        f"import json, os, socket\nout = {{}}\n{code}\nopen('{out_dir}/out.json', 'w').write(json.dumps(out))"
    )
    iso.setdefault("rw", (out_dir,))
    report = _py(sandbox, "probe", wrapper, **iso)
    assert report.exit_code == 0, report
    return json.loads((out_dir / "out.json").read_text())  # type: ignore[no-any-return]


def test_memory_limit_ends_in_an_oom_kill_reported_as_oom(sandbox: Sandbox) -> None:
    """A 200 MiB allocation under a 32 MiB limit is SIGKILLed and reported as OOM."""
    report = _py(sandbox, "oom", "x = bytearray(200 << 20)", Limits(memory_max=32 << 20))
    assert report.reason == "oom"
    assert report.oom_killed
    assert report.signal == signal.SIGKILL
    assert "memory" in report.limits_hit
    assert report.usage.memory_peak is not None
    assert report.usage.memory_peak <= 33 << 20


def test_cpu_quota_holds_a_busy_loop_near_the_quota(sandbox: Sandbox) -> None:
    """Three 2 s busy loops under --cpus 0.25 get at most ~0.25 CPU together (cgroup CPU time / wall)
    and are throttled whenever they come near it (a loaded machine may give them less)."""
    loop = (
        "import os, time\nfor _ in range(2):\n    if os.fork() == 0:\n        break\n"
        "t = time.monotonic()\nwhile time.monotonic() - t < 2.0: pass\n"
        "try:\n    while True: os.wait()\nexcept ChildProcessError:\n    pass"
    )
    report = _py(sandbox, "cpu", loop, Limits(cpus=0.25))
    assert report.exit_code == 0
    assert report.usage.cpu_time_s is not None
    share = report.usage.cpu_time_s / report.duration_s
    detail = f"{report.usage.cpu_time_s:.2f} s CPU in {report.duration_s:.2f} s"
    assert share <= 0.25 * 1.2, detail
    assert share >= 0.02, f"the loops hardly ran: the machine is overloaded ({detail})"
    if share >= 0.2:
        assert (report.usage.cpu_throttled_periods or 0) > 5, detail
        assert "cpus" in report.limits_hit


def test_pids_limit_stops_a_fork_bomb(sandbox: Sandbox) -> None:
    """With --pids 16 forking stops at the limit (EAGAIN) and pids.events counts the refusals."""
    bomb = (
        "import os, time\nn = 0\ntry:\n    while n < 200:\n        if os.fork() == 0:\n"
        "            time.sleep(30)\n            os._exit(0)\n        n += 1\n"
        "except OSError:\n    pass\nprint(n)\nraise SystemExit(0 if n < 16 else 1)"
    )
    report = _py(sandbox, "forkbomb", bomb, Limits(pids_max=16))
    assert report.exit_code == 0
    assert "pids" in report.limits_hit
    assert (report.usage.pids_max_hits or 0) >= 1


def test_namespaces_identity_and_privileges(sandbox: Sandbox, tmp_path: Path) -> None:
    """Own hostname, PID 1, only loopback (up) with --network none, nobody, no caps, no_new_privs."""
    code = (
        "lines = open('/proc/self/status').read().splitlines()\n"
        "st = dict(l.split(':\\t', 1) for l in lines if ':\\t' in l)\n"
        "out['hostname'] = socket.gethostname()\nout['pid'] = os.getpid()\n"
        "out['procs'] = len([p for p in os.listdir('/proc') if p.isdigit()])\n"
        "out['ifaces'] = [n for _, n in socket.if_nameindex()]\n"
        "out['lo_flags'] = int(open('/sys/class/net/lo/flags').read(), 16)\n"
        "out['uid'] = os.getuid(); out['gid'] = os.getgid(); out['euid'] = os.geteuid()\n"
        "out['nnp'] = st['NoNewPrivs'].strip(); out['capbnd'] = st['CapBnd'].strip()\n"
        "out['capeff'] = st['CapEff'].strip(); out['capprm'] = st['CapPrm'].strip()\n"
        "out['seccomp'] = st['Seccomp'].strip()\n"
    )
    out = _probe(sandbox, tmp_path, code, hostname="sbx-test", network="none")
    assert out["hostname"] == "sbx-test"
    assert os.uname().nodename != "sbx-test"
    assert out["pid"] == 1
    assert out["procs"] == 1
    assert out["ifaces"] == ["lo"]
    assert int(out["lo_flags"]) & 1  # IFF_UP  # type: ignore[call-overload]
    assert (out["uid"], out["gid"], out["euid"]) == (65534, 65534, 65534)
    assert out["nnp"] == "1"
    assert out["capbnd"] == out["capeff"] == out["capprm"] == "0000000000000000"


def test_host_network_is_kept_by_default(sandbox: Sandbox, tmp_path: Path) -> None:
    """Without --network none the host's interfaces stay visible."""
    out = _probe(sandbox, tmp_path, "out['ifaces'] = [n for _, n in socket.if_nameindex()]")
    assert set(out["ifaces"]) == {n for _, n in __import__("socket").if_nameindex()}  # type: ignore[arg-type]


def test_file_system_view(sandbox: Sandbox, tmp_path: Path) -> None:
    """The root and --ro dirs are read-only, --rw dirs writable, /tmp private, /dev minimal."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "model.onnx").write_text("weights")
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)
    (Path("/tmp") / f"host-only-{os.getpid()}").write_text("x")
    code = (
        "import errno\n"
        "def attempt(p):\n    try:\n        open(p, 'w').write('1')\n        return 'ok'\n"
        "    except OSError as e:\n        return errno.errorcode[e.errno]\n"
        f"out['bundle_read'] = open('{bundle}/model.onnx').read()\n"
        f"out['bundle_write'] = attempt('{bundle}/new')\n"
        "out['etc_write'] = attempt('/etc/edgefleet-test')\n"
        f"out['state_write'] = attempt('{state}/data')\n"
        "out['tmp_write'] = attempt('/tmp/scratch')\n"
        f"out['host_tmp_visible'] = os.path.exists('/tmp/host-only-{os.getpid()}')\n"
        "out['dev'] = sorted(os.listdir('/dev'))\n"
    )
    try:
        out = _probe(sandbox, tmp_path, code, ro=(bundle,), rw=(tmp_path / "out", state))
    finally:
        (Path("/tmp") / f"host-only-{os.getpid()}").unlink()
    assert out["bundle_read"] == "weights"
    assert out["bundle_write"] == "EROFS"
    assert out["etc_write"] == "EROFS"
    assert out["state_write"] == "ok"
    assert (state / "data").read_text() == "1"
    assert out["tmp_write"] == "ok"
    assert out["host_tmp_visible"] is False
    assert not Path("/tmp/scratch").exists() or Path("/tmp/scratch").read_text() != "1"
    assert "kmsg" not in out["dev"]  # type: ignore[operator]
    assert {"null", "zero", "urandom", "pts", "shm"} <= set(out["dev"])  # type: ignore[arg-type]


def test_allowed_device_is_bound_and_others_are_absent(sandbox: Sandbox, tmp_path: Path) -> None:
    """--device /dev/kmsg appears in the private /dev and its major:minor in the device cgroup."""
    require(Path("/dev/kmsg").exists(), "/dev/kmsg")
    code = "out['dev'] = sorted(os.listdir('/dev'))"
    spec_limits = Limits(devices=(parse_device("/dev/kmsg:r"),))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out_dir.chmod(0o777)
    wrapper = f"import json, os\nout = {{}}\n{code}\nopen('{out_dir}/o.json', 'w').write(json.dumps(out))"
    spec = SandboxSpec("dev", (SYSTEM_PYTHON, "-c", wrapper), spec_limits, Isolation(rw=(out_dir,)))
    process = sandbox.start(spec)
    report = process.wait(timeout=30)
    assert report.exit_code == 0
    assert "kmsg" in json.loads((out_dir / "o.json").read_text())["dev"]
    if report.cgroup_version == 1:
        assert "c 1:11 r" in report.applied["devices/devices.allow"]


def test_seccomp_deny_list_is_loaded(sandbox: Sandbox, tmp_path: Path) -> None:
    """ptrace(PTRACE_TRACEME), harmless without the filter, fails with EPERM inside."""
    require(seccomp_available() is None, "pyseccomp and libseccomp.so.2")
    code = (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "out['ptrace'] = libc.ptrace(0, 0, 0, 0); out['errno'] = ctypes.get_errno()\n"
        "out['seccomp'] = [l.split()[1] for l in open('/proc/self/status') if l.startswith('Seccomp:')][0]\n"
    )
    out = _probe(sandbox, tmp_path, code)
    assert out["ptrace"] == -1
    assert out["errno"] == 1  # EPERM
    assert out["seccomp"] == "2"
    plain = _probe(sandbox, tmp_path, code, seccomp=False)
    assert plain["ptrace"] == 0
    assert plain["seccomp"] == "0"


def test_exec_failure_is_reported_and_leaves_nothing(sandbox: Sandbox) -> None:
    """A missing executable is a clear error; the cgroup is removed again."""
    with pytest.raises(SandboxFailedError, match="could not execute '/no/such/binary'"):
        sandbox.start(SandboxSpec("missing", ("/no/such/binary",)))
    assert sandbox.driver.open("missing") is None


def test_strict_refuses_unenforceable_limits(sandbox: Sandbox) -> None:
    """--strict with a limit this layout cannot enforce refuses before anything is created."""
    unenforced = sandbox.driver.unenforceable(Limits(memory_high=8 << 20))
    require(unenforced, "a cgroup layout without memory.high (cgroup v1)")
    with pytest.raises(UnenforceableError, match="memory-high"):
        sandbox.start(SandboxSpec("strict", ("true",), Limits(memory_high=8 << 20)), strict=True)
    assert sandbox.driver.open("strict") is None
    report = sandbox.start(SandboxSpec("lenient", ("true",), Limits(memory_high=8 << 20))).wait(timeout=30)
    assert report.exit_code == 0
    assert [u.limit for u in report.unenforced] == ["memory-high"]


def test_graceful_stop_then_kill(sandbox: Sandbox) -> None:
    """A workload ignoring SIGTERM is killed with its whole cgroup after the grace period."""
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)"
    process = sandbox.start(SandboxSpec("stubborn", (SYSTEM_PYTHON, "-c", code)))
    assert process.running()
    report = process.stop(grace=0.5)
    assert report.reason == "stopped"
    assert report.signal == signal.SIGKILL
    term = "import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\ntime.sleep(60)"
    polite = sandbox.start(SandboxSpec("polite", (SYSTEM_PYTHON, "-c", term)))
    import time

    time.sleep(0.3)
    report = polite.stop(grace=5)
    assert report.reason == "stopped"
    assert report.exit_code == 0
    assert report.duration_s < 5
