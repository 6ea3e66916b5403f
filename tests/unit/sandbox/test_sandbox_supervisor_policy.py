"""Restart policies, exponential backoff, crash-loop detection and probe/workload settings."""

import pytest

from edgefleet.errors import InvalidInputError
from edgefleet.sandbox import Isolation, Limits, SandboxSpec, Usage
from edgefleet.sandbox.limits import DeviceRule, IoMax
from edgefleet.sandbox.report import RunReport
from edgefleet.sandbox.supervisor import Probe, RestartPolicy, Workload
from edgefleet.sandbox.supervisor.policy import RestartTracker

pytestmark = pytest.mark.unit


def _report(reason: str, code: int | None) -> RunReport:
    return RunReport(
        name="w", backend="native", argv=["x"], reason=reason, exit_code=code, signal=None,  # type: ignore[arg-type]
        signal_name=None, oom_killed=False, limits_hit=[], duration_s=1.0, usage=Usage(), cgroup_version=1,
    )  # fmt: skip


def test_policies_decide_restarts() -> None:
    """never: no; always: yes; on-failure: only for a non-zero exit, a signal, OOM or a probe failure."""
    ok, bad, oom = _report("exited", 0), _report("exited", 2), _report("oom", None)
    assert not RestartPolicy("never").wants_restart(bad)
    assert RestartPolicy("always").wants_restart(ok)
    on_failure = RestartPolicy("on-failure")
    assert not on_failure.wants_restart(ok)
    assert on_failure.wants_restart(bad)
    assert on_failure.wants_restart(oom)
    assert on_failure.wants_restart(_report("probe_failed", None))
    with pytest.raises(InvalidInputError, match="always, on-failure, never"):
        RestartPolicy("sometimes")  # type: ignore[arg-type]


def test_backoff_doubles_caps_resets_and_detects_crash_loops() -> None:
    """Delays 1, 2, 4, capped at max; a long run resets; too many restarts in the window stop it."""
    tracker = RestartTracker(
        RestartPolicy(initial_s=1, factor=2, max_s=5, crash_loop_restarts=5, crash_loop_window_s=100)
    )
    delays = [tracker.next_delay(now=float(i), ran_for=0.1) for i in range(5)]
    assert delays == [1, 2, 4, 5, 5]
    assert tracker.next_delay(now=6.0, ran_for=0.1) is None  # the 6th restart within 100 s
    fresh = RestartTracker(RestartPolicy(initial_s=1, factor=2, reset_after_s=10))
    assert fresh.next_delay(0.0, 0.1) == 1
    assert fresh.next_delay(1.0, 0.1) == 2
    assert fresh.next_delay(50.0, 30.0) == 1  # it ran long enough: back to the first delay
    old = RestartTracker(RestartPolicy(crash_loop_restarts=1, crash_loop_window_s=10))
    assert old.next_delay(0.0, 0.0) is not None
    assert old.next_delay(20.0, 0.0) is not None  # the first restart fell out of the window


def test_probe_settings_are_checked() -> None:
    """HTTP/TCP need a port, exec a command; periods must be positive."""
    with pytest.raises(InvalidInputError, match="port"):
        Probe("http")
    with pytest.raises(InvalidInputError, match="command"):
        Probe("exec")
    with pytest.raises(InvalidInputError, match="kind"):
        Probe("grpc")  # type: ignore[arg-type]
    assert Probe("tcp", port=80).host == "127.0.0.1"


def test_workload_round_trips_through_json() -> None:
    """The state file holds everything needed to adopt or restart a workload."""
    wl = Workload(
        SandboxSpec(
            "web",
            ("/bin/sh", "-c", "x"),
            Limits(
                cpus=0.5,
                memory_max=64 << 20,
                io_max=(IoMax("8:0", rbps=5),),
                devices=(DeviceRule("/dev/null", "c", 1, 3),),
            ),
            Isolation(network="none", hostname="web", workdir=__import__("pathlib").Path("/tmp")),
            env={"A": "1"},
        ),
        restart=RestartPolicy("always", initial_s=0.5),
        liveness=Probe("exec", command=("true",)),
        readiness=Probe("http", port=8080, path="/v2/health/ready"),
    )
    assert Workload.from_dict(__import__("json").loads(__import__("json").dumps(wl.to_dict()))) == wl
