"""`edgefleet up`'s pieces that need no running system: state, pid files, the generated specs,
the simulator's kept identities, and `down` with nothing to stop."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from edgefleet.errors import ConflictError
from edgefleet.server.rollout.strategy import Strategy
from edgefleet.testing.fleet import FleetSimulator, SimulatorConfig
from edgefleet.up.layout import UpLayout, UpState, exclusive
from edgefleet.up.media import LABELS, PREPROCESS, pipeline_spec
from edgefleet.up.procs import ProcessTable
from edgefleet.up.release import deployment_body
from edgefleet.up.summary import _waves

pytestmark = pytest.mark.unit


def test_state_round_trips_with_mode_0600_and_a_bad_file_names_the_fix(tmp_path: Path) -> None:
    """up.json holds the token: written 0600; an unreadable one is a conflict that says what to do."""
    layout = UpLayout(tmp_path / "up")
    layout.make()
    state = UpState(port=8470, token="efk_x", device_id="dev_1", agent_metrics_port=9000)  # noqa: S106 - test data
    state.save(layout)
    assert layout.state_file.stat().st_mode & 0o777 == 0o600
    assert UpState.load(layout) == state
    layout.state_file.write_text("{not json")
    with pytest.raises(ConflictError) as err:
        UpState.load(layout)
    assert err.value.code == "up.state_invalid"
    assert "down --purge" in err.value.message
    layout.state_file.write_text(json.dumps({"version": 99}))
    with pytest.raises(ConflictError, match="format version 99"):
        UpState.load(layout)


def test_instance_name_is_stable_and_differs_per_directory(tmp_path: Path) -> None:
    """The cgroup parent comes from the directory: the same for one, different for two."""
    a, b = UpLayout(tmp_path / "a"), UpLayout(tmp_path / "b")
    assert a.instance == UpLayout(tmp_path / "a").instance
    assert a.instance != b.instance
    assert a.instance.startswith("efup-")


def _fake_proc(root: Path, pid: int, start: int, state: str = "S") -> None:
    d = root / str(pid)
    d.mkdir(parents=True)
    fields = [state, "1", str(pid), str(pid), *["0"] * 15, str(start), "0"]
    (d / "stat").write_text(f"{pid} (python3 x) {' '.join(fields)}\n")


def test_pid_files_never_match_a_reused_pid_or_a_zombie(tmp_path: Path) -> None:
    """A pid file names a process by pid and start time: another process with that pid, or a
    zombie, is not ours (and the stale pid file goes)."""
    proc, run = tmp_path / "proc", tmp_path / "run"
    run.mkdir()
    table = ProcessTable(run, tmp_path, proc=proc)
    _fake_proc(proc, 4242, start=1000)
    (run / "agent.pid").write_text(json.dumps({"pid": 4242, "started": 1000, "argv": ["x"]}))
    rec = table.get("agent")
    assert rec is not None
    assert rec.pid == 4242
    (run / "server.pid").write_text(json.dumps({"pid": 4242, "started": 999, "argv": ["x"]}))
    assert table.get("server") is None
    assert not (run / "server.pid").exists()
    _fake_proc(proc, 4343, start=5, state="Z")
    (run / "pipeline.pid").write_text(json.dumps({"pid": 4343, "started": 5, "argv": ["x"]}))
    assert table.get("pipeline") is None
    (run / "simulator.pid").write_text("garbage")
    assert table.get("simulator") is None
    assert not table.stop("simulator")


def test_generated_pipeline_spec_is_valid(tmp_path: Path) -> None:
    """The pipeline `up` writes passes the pipeline's own spec validation."""
    from edgefleet.pipeline.specfile import load_spec

    spec = tmp_path / "pipeline.toml"
    spec.write_text(
        pipeline_spec(
            model="orientation",
            endpoint="http://127.0.0.1:9",
            max_fps=2,
            metrics_port=9100,
            preview_port=9101,
        )
    )
    loaded = load_spec(spec)
    assert loaded.spec.pipeline.max_fps == 2
    model = loaded.spec.models[0]
    assert model.url == "http://127.0.0.1:9"
    assert model.preprocess.color == PREPROCESS["color"]
    assert {s.kind for s in loaded.spec.sinks} == {"jsonl", "mjpeg"}
    assert model.postprocess.labels == LABELS  # type: ignore[union-attr]


def test_deployment_is_two_waves_with_this_machine_first() -> None:
    """The strategy validates, has two waves, and wave 1 is one device."""
    body = deployment_body(5)
    strategy = Strategy.model_validate(body["strategy"])
    assert [w.count for w in strategy.waves] == [1, None]
    assert strategy.plan(4) == [1, 4]


def test_waves_name_their_devices_in_id_order() -> None:
    """The summary's waves follow the engine: devices in id order, cut at the plan."""
    devices = [{"id": "dev_3"}, {"id": "dev_1"}, {"id": "dev_2"}]
    waves = _waves([1, 3], devices, "dev_1")
    assert waves[0] == {"devices": ["dev_1"], "this_machine": True, "simulated": 0}
    assert waves[1] == {"devices": ["dev_2", "dev_3"], "this_machine": False, "simulated": 2}


def test_simulator_keeps_identities_and_enrolls_nobody_the_second_time(tmp_path: Path) -> None:
    """With a state file, simulated devices enroll once; a new simulator reuses id and key (0600)."""
    enrolled: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/device/v1/enroll"
        body = json.loads(request.content)
        enrolled.append(body["public_key"])
        return httpx.Response(201, json={"device_id": f"dev_{len(enrolled)}", "server_public_key": "AAAA"})

    state = tmp_path / "sim.json"
    config = SimulatorConfig(server="http://x", join_token="t", devices=2, state_file=str(state))  # noqa: S106

    async def enroll() -> FleetSimulator:
        sim = FleetSimulator(config, transport=httpx.MockTransport(handler))
        try:
            await sim.enroll_all()
        finally:
            await sim.aclose()
        return sim

    first = asyncio.run(enroll())
    assert len(enrolled) == 2
    assert state.stat().st_mode & 0o777 == 0o600
    second = asyncio.run(enroll())
    assert len(enrolled) == 2  # nobody enrolled again
    assert [d.device_id for d in second.devices] == [d.device_id for d in first.devices]
    assert [d.public_b64 for d in second.devices] == [d.public_b64 for d in first.devices]


def test_down_with_nothing_running_says_so_and_exits_0(tmp_path: Path) -> None:
    """`edgefleet down` on a directory where nothing runs is not an error."""
    r = subprocess.run(
        [sys.executable, "-m", "edgefleet", "down", "--data-dir", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "EDGEFLEET_DATA_DIR": str(tmp_path)},
    )
    assert r.returncode == 0, r.stderr
    assert "nothing was running" in r.stdout


def test_one_up_or_down_at_a_time_per_directory(tmp_path: Path) -> None:
    """While one `up`/`down` holds a directory, another is refused with a clear conflict."""
    layout = UpLayout(tmp_path / "up")
    with exclusive(layout):
        with pytest.raises(ConflictError) as err, exclusive(layout):
            pass
        assert err.value.code == "up.busy"
    with exclusive(layout):  # released
        pass
