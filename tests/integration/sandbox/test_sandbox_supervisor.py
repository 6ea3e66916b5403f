"""The supervisor on the real kernel: restarts with backoff, crash loops, probes, adoption."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from edgefleet.sandbox import Isolation, Limits, SandboxSpec
from edgefleet.sandbox.supervisor import Probe, RestartPolicy, Supervisor, Workload, run_probe

from .conftest import SYSTEM_PYTHON

pytestmark = pytest.mark.integration


def _until(sup: Supervisor, done: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, [s.state for s in sup.statuses()]
        sup.tick()
        time.sleep(0.03)


def test_crashing_workload_restarts_with_backoff_until_crash_loop(cgroup_parent: str, tmp_path: Path) -> None:
    """exit 1 under on-failure: restarted after 0.1, 0.2, 0.4 s, then declared a crash loop; logs kept."""
    sup = Supervisor(tmp_path / "state", parent=cgroup_parent)
    policy = RestartPolicy("on-failure", initial_s=0.1, factor=2, max_s=5, crash_loop_restarts=3)
    sup.add(Workload(SandboxSpec("crashy", ("/bin/sh", "-c", "echo boom $$; exit 1")), restart=policy))
    _until(sup, lambda: sup.status("crashy").state == "crash_loop")
    st = sup.status("crashy")
    assert st.restarts == 3
    assert [r.exit_code for r in st.exits] == [1, 1, 1, 1]
    gaps = [b - a for a, b in zip(st.starts, st.starts[1:], strict=False)]
    # each restart waits at least its backoff (0.1, 0.2, 0.4 s); spawn time on a loaded box only adds
    assert all(gap >= delay for gap, delay in zip(gaps, (0.1, 0.2, 0.4), strict=True)), gaps
    assert "crash loop" in (st.last_error or "")
    assert sup.logs("crashy", 10) == ["boom 1"] * 4  # PID 1 of its own namespace every time
    sup.remove("crashy")


def test_supervisor_adopts_running_workloads_after_its_restart(cgroup_parent: str, tmp_path: Path) -> None:
    """A new Supervisor over the same state dir finds the workload by its cgroup, does not start a
    second copy, and restarts it (policy always) when it is killed."""
    state = tmp_path / "state"
    first = Supervisor(state, parent=cgroup_parent)
    spec = SandboxSpec(
        "sleeper", (SYSTEM_PYTHON, "-c", "import time; print('up', flush=True); time.sleep(120)")
    )
    first.add(Workload(spec, restart=RestartPolicy("always", initial_s=0.05), stop_grace_s=0.5))
    pid = first.status("sleeper").pid
    assert pid is not None
    first.close()  # the agent goes away; the workload stays

    second = Supervisor(state, parent=cgroup_parent)
    st = second.status("sleeper")
    assert st.adopted
    assert st.state == "running"
    assert st.pid == pid
    second.tick()
    group = second.sandbox.driver.open("sleeper")
    assert group is not None
    assert second.sandbox.driver.procs(group) == [pid]  # not duplicated
    usage = second.status("sleeper").usage
    assert usage is not None
    assert usage.memory_current
    assert usage.cpu_time_s is not None
    _until(second, lambda: second.logs("sleeper") == ["up"])

    os.kill(pid, signal.SIGKILL)
    _until(
        second, lambda: second.status("sleeper").state == "running" and second.status("sleeper").pid != pid
    )
    st = second.status("sleeper")
    assert st.exits[-1].reason == "signaled"
    assert st.exits[-1].signal == signal.SIGKILL
    assert st.restarts == 1
    second.close(stop_workloads=True)
    assert second.status("sleeper").state == "stopped"
    second.remove("sleeper")


def test_workload_that_ended_while_unsupervised_is_recorded(cgroup_parent: str, tmp_path: Path) -> None:
    """Its exit status is read from exit.json by the next Supervisor and the policy applies."""
    state = tmp_path / "state"
    first = Supervisor(state, parent=cgroup_parent)
    first.add(
        Workload(SandboxSpec("brief", ("/bin/sh", "-c", "sleep 0.3; exit 4")), restart=RestartPolicy("never"))
    )
    first.close()
    time.sleep(0.8)
    second = Supervisor(state, parent=cgroup_parent)
    st = second.status("brief")
    assert st.state == "exited"
    assert st.exits[-1].exit_code == 4
    second.remove("brief")


def test_start_interrupted_before_its_record_leaves_no_orphan(cgroup_parent: str, tmp_path: Path) -> None:
    """A supervisor killed between forking a workload and writing its launch record (state.json):
    the next one kills what runs in that cgroup and starts the workload again, instead of a
    conflict with the orphan ("already running") that would crash-loop it."""
    state = tmp_path / "state"
    first = Supervisor(state, parent=cgroup_parent)
    spec = SandboxSpec("torn", (SYSTEM_PYTHON, "-c", "import time; time.sleep(120)"))
    first.add(Workload(spec, restart=RestartPolicy("always", initial_s=0.05), stop_grace_s=0.5))
    orphan = first.status("torn").pid
    assert orphan is not None
    first.close()
    (state / "workloads" / "torn" / "state.json").unlink()  # the record the killed process never wrote

    second = Supervisor(state, parent=cgroup_parent)
    _until(second, lambda: second.status("torn").state == "running")
    st = second.status("torn")
    assert st.pid != orphan
    assert st.restarts == 0, st.last_error
    group = second.sandbox.driver.open("torn")
    assert group is not None
    assert second.sandbox.driver.procs(group) == [st.pid]
    second.remove("torn")


@pytest.fixture
def http_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_readiness_and_failing_liveness(cgroup_parent: str, tmp_path: Path, http_port: int) -> None:
    """An HTTP server inside becomes ready via its HTTP probe; a failing exec liveness probe restarts
    the workload with reason probe_failed."""
    server = (
        f"import http.server as h\n"
        f"h.HTTPServer(('127.0.0.1', {http_port}), h.SimpleHTTPRequestHandler).serve_forever()"
    )
    sup = Supervisor(tmp_path / "state", parent=cgroup_parent)
    sup.add(
        Workload(
            SandboxSpec(
                "web",
                (SYSTEM_PYTHON, "-c", server),
                Limits(memory_max=128 << 20),
                Isolation(workdir=Path("/")),
            ),
            readiness=Probe("http", port=http_port, period_s=0.1, timeout_s=0.5),
            liveness=Probe("tcp", port=http_port, period_s=0.1, initial_delay_s=0.2, failure_threshold=20),
            stop_grace_s=0.5,
        )
    )
    _until(sup, lambda: sup.status("web").ready is True)
    assert sup.status("web").live in {None, True}
    sup.remove("web")

    sup.add(
        Workload(
            SandboxSpec("sick", (SYSTEM_PYTHON, "-c", "import time; time.sleep(60)")),
            liveness=Probe("exec", command=("false",), period_s=0.05, failure_threshold=2),
            restart=RestartPolicy("on-failure", initial_s=0.05),
            stop_grace_s=0.2,
        )
    )
    _until(sup, lambda: bool(sup.status("sick").exits))
    report = sup.status("sick").exits[0]
    assert report.reason == "probe_failed"
    assert "liveness" in (report.error or "")
    sup.close(stop_workloads=True)
    sup.remove("sick")


def test_probe_kinds_against_local_servers(http_port: int) -> None:
    """HTTP passes on 2xx and fails on 5xx, TCP fails on a closed port, exec follows the exit code."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/ok" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            del args

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        assert run_probe(Probe("http", port=port, path="/ok")) == (True, "HTTP 200")
        assert run_probe(Probe("http", port=port, path="/bad")) == (False, "HTTP 503")
        assert run_probe(Probe("tcp", port=port))[0]
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert not run_probe(Probe("tcp", port=http_port, timeout_s=0.5))[0]
    assert run_probe(Probe("exec", command=("true",)))[0]
    assert run_probe(Probe("exec", command=("false",))) == (False, "exit 1")
