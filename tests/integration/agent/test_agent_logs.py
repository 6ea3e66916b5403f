"""Log shipping end to end: a real server process, a real agent, a real workload in its sandbox."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgefleet.testing.require import require
from tests.integration.agent.conftest import AgentProc, Fleet, make_bundle, new_agent, serving, workload_of

pytestmark = pytest.mark.integration
MAX_LINES = 40
FOLLOW = (sys.executable, "-m", "edgefleet", "device", "logs")


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    """A server process that keeps only the newest 40 log lines per device (the agents fixture uses it)."""
    import os

    require(os.geteuid() == 0, "root (the sandbox needs it)")
    f = Fleet(tmp_path, "--max-log-lines", str(MAX_LINES))
    try:
        yield f
    finally:
        f.server.stop()


def _logs(fleet: Fleet, dev: str, **params: Any) -> list[dict[str, Any]]:
    with fleet.api() as api:
        r = api.get(f"/devices/{dev}/logs", params={"limit": 1000} | params)
        assert r.status_code == 200, r.text
        return list(r.json()["items"])


def _wait(what: str, pred: Any, timeout: float = 90.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _cli(fleet: Fleet, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgefleet", "device", "logs", *args, "--server", fleet.server.url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=_env(fleet),
    )


def _env(fleet: Fleet) -> dict[str, str]:
    import os

    return {
        **os.environ,
        "EDGEFLEET_TOKEN": fleet.token,
        "EDGEFLEET_CA_CERT": str(fleet.server.ca),
        "COLUMNS": "200",
    }


def test_logs_reach_the_server_survive_an_outage_are_bounded_and_followed(
    tmp_path: Path, fleet: Fleet, agents: list[AgentProc]
) -> None:
    fleet.upload(make_bundle(tmp_path, "det", "1.0.0"))
    a = new_agent(tmp_path, fleet, agents)
    a.start("--log-interval", "0.5")
    dev = a.wait(lambda s: s["device_id"] and s["polls"] > 0, 60, "enrollment")["device_id"]
    fleet.deploy("det", "1.0.0")
    st = a.wait(lambda s: serving(s, "det", "1.0.0"), 120, "1.0.0 serving")

    # the workload's own output (edgefleet serve's banner) and the agent's records arrive
    ready = _wait(
        "the workload's output at the server",
        lambda: [x for x in _logs(fleet, dev, workload="det") if "ready; Ctrl-C stops" in x["message"]],
    )
    assert ready[0]["source"] == "workload"
    updated = _wait(
        "the agent's 'updated' record at the server",
        lambda: [
            x for x in _logs(fleet, dev) if x["source"] == "agent" and x["message"].startswith("updated")
        ],
    )
    assert "deployment=det" in updated[0]["message"]

    r = _cli(fleet, dev, "--workload", "det", "-n", "5")
    assert r.returncode == 0, r.stderr
    assert "ready; Ctrl-C stops" in r.stdout
    assert "det" in r.stdout
    r = _cli(fleet, dev, "--since", "yesterday-ish")
    assert r.returncode == 2
    assert "--since: 'yesterday-ish' is neither a duration" in r.stderr
    r = _cli(fleet, "dev_0000000000000000")
    assert r.returncode == 3
    assert "no device 'dev_0000000000000000'" in r.stderr

    # a chatty workload (lines appended to its output as it writes them): the server keeps the newest
    out = Path(a.state / "supervisor" / "workloads" / workload_of(st, "det")["sandbox"] / "output.log")
    with out.open("a") as f:
        f.writelines(f"online line {i}\n" for i in range(50))
    _wait("the online lines", lambda: any(x["message"] == "online line 49" for x in _logs(fleet, dev)))
    assert len(_logs(fleet, dev)) <= MAX_LINES

    with (tmp_path / "follow.out").open("wb") as fout, (tmp_path / "follow.err").open("wb") as ferr:
        follower = subprocess.Popen(
            [*FOLLOW, dev, "-f", "--interval", "0.3", "-n", "1", "--server", fleet.server.url],
            stdout=fout,
            stderr=ferr,
            env=_env(fleet),
        )
    try:
        _wait("the follower's first line", lambda: (tmp_path / "follow.out").read_text().strip(), 60)
        # the server goes away: lines pile up on the device (the workload keeps writing, the agent warns)
        fleet.server.stop()
        a.wait(lambda s: s["server_reachable"] is False, 60, "server unreachable")
        with out.open("a") as f:
            f.writelines(f"offline line {i}\n" for i in range(30))
        a.wait(lambda s: s["logs"]["batches"] > 0 and s["logs"]["lines"] >= 30, 60, "lines buffered")
        fleet.server.start()
        a.wait(lambda s: s["logs"]["lines"] == 0, 90, "buffered lines delivered")
        lines = _logs(fleet, dev)
        msgs = [x["message"] for x in lines]
        assert "offline line 29" in msgs
        assert any(m.startswith("server unreachable") for m in msgs)
        # retention: the server kept only the newest lines of the device
        assert len(lines) <= MAX_LINES
        assert "online line 0" not in msgs
        assert a.status()["logs"]["shipped"] > MAX_LINES + 30
        # the follower, still running across the outage, printed the lines as they arrived
        _wait(
            "the follower to print the delivered lines",
            lambda: "offline line 29" in (tmp_path / "follow.out").read_text(),
            60,
        )
    finally:
        follower.terminate()
        follower.wait(timeout=30)
    assert "server" in (tmp_path / "follow.err").read_text()  # it said it lost the server, then went on
