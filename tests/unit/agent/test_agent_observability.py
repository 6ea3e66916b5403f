"""The agent's observability parts: the log buffer's bound, workload log tailing across rotation,
the shipper with the server away and back, device metrics from fixture trees, the exposition format."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgefleet.agent.devicemetrics import DeviceMetrics
from edgefleet.agent.errors import AgentUnavailableError
from edgefleet.agent.exposition import Family, render, samples
from edgefleet.agent.logbuffer import MAX_LINE_CHARS, Batch, LogBuffer
from edgefleet.agent.logship import LogShipper, WorkloadLog, read_new_lines
from edgefleet.errors import EdgefleetError
from edgefleet.sandbox.logs import RotatingWriter
from edgefleet.telemetry.metrics import BASE_UNITS
from edgefleet.testing.fake_devices import jetson_orin_nano, x86_intel_npu_uvc

pytestmark = pytest.mark.unit


def _lines(batch: Batch) -> list[dict[str, object]]:
    return [json.loads(x) for x in gzip.decompress(batch.body()).decode().splitlines()]


def test_log_buffer_is_bounded_oldest_dropped_and_the_gap_announced(tmp_path: Path) -> None:
    buf = LogBuffer(tmp_path / "logs", capacity_bytes=4096)
    for b in range(30):
        for i in range(20):
            buf.add(f"batch {b} line {i} " + "x" * (b * 7 % 50), source="agent", level="info")
        buf.seal()
    batches = buf.batches()
    assert sum(b.path.stat().st_size for b in batches) <= 4096
    assert buf.dropped > 0
    sent = [f"batch {b} line {i} " + "x" * (b * 7 % 50) for b in range(30) for i in range(20)]
    kept = [r["msg"] for b in batches for r in _lines(b) if str(r["msg"]).startswith("batch")]
    assert kept == sent[-len(kept) :]  # the newest lines, in order
    assert buf.dropped >= len(sent) - len(kept)  # every other line counted (drop notices too)
    assert _lines(batches[-1])[-1]["msg"].startswith("batch 29 line 19")  # the newest survive
    # the next batch tells the server how many went missing since the last notice, once
    buf.capacity_bytes = 1 << 20  # no more drops from here on
    buf.add("after", source="agent")
    first = _lines(buf.seal() or batches[0])
    assert first[0]["level"] == "warning"
    assert re.search(r"log buffer full: \d+ older lines were dropped", str(first[0]["msg"]))
    buf.add("again", source="agent")
    assert [x["msg"] for x in _lines(buf.seal() or batches[0])] == ["again"]
    # state survives a restart: numbering goes on, counters stay
    again = LogBuffer(tmp_path / "logs", capacity_bytes=1 << 20)
    assert again.dropped == buf.dropped
    again.add("x", source="agent")
    assert (again.seal() or batches[0]).seq > buf.batches()[-1].seq - 1


def test_log_buffer_pending_limit_and_long_lines(tmp_path: Path) -> None:
    buf = LogBuffer(tmp_path, max_pending=10)
    for i in range(25):
        buf.add(f"{i}", source="workload", workload="det")
    buf.add("y" * (MAX_LINE_CHARS * 2), source="agent")
    assert buf.dropped == 16
    batch = buf.seal()
    assert batch is not None
    recs = _lines(batch)
    assert "16 older lines" in str(recs[0]["msg"])
    assert [r["msg"] for r in recs[1:-1]] == [str(i) for i in range(16, 25)]
    assert len(str(recs[-1]["msg"])) == MAX_LINE_CHARS
    assert buf.seal() is None  # nothing pending, nothing written


def test_workload_output_is_read_once_across_rotations(tmp_path: Path) -> None:
    path = tmp_path / "output.log"
    w = RotatingWriter(path, max_bytes=64, backups=3)
    w.write(b"one\ntwo\npart")
    lines, cur = read_new_lines(path, None)
    assert lines == ["one", "two"]  # the partial line waits for its end
    w.write(b"ial\n" + b"z" * 40 + b"\nthree\n")  # rotates past 64 bytes
    lines, cur = read_new_lines(path, cur)
    assert lines == ["partial", "z" * 40, "three"]
    lines, cur = read_new_lines(path, cur)
    assert lines == []
    w.close()
    path.write_text("new\n")  # replaced by a new, shorter file: read from its start
    assert read_new_lines(path, cur)[0] == ["new"]
    assert read_new_lines(tmp_path / "gone.log", cur) == ([], cur)


class Server:
    """The device-API transport as the shipper sees it: stores batches, or is away, or refuses."""

    def __init__(self) -> None:
        self.up = True
        self.refuse: set[int] = set()
        self.got: list[list[dict[str, object]]] = []

    def __call__(self, batch: Batch) -> None:
        if not self.up:
            raise AgentUnavailableError("cannot reach the server")
        if batch.seq in self.refuse:
            raise EdgefleetError("log batch line 1: bad", code="invalid_input")
        self.got.append(_lines(batch))


def test_shipper_buffers_while_the_server_is_away_and_delivers_in_order(tmp_path: Path) -> None:
    out = tmp_path / "sup" / "ef-det-r1" / "output.log"
    out.parent.mkdir(parents=True)
    out.write_text("ready\n")
    server = Server()
    buf = LogBuffer(tmp_path / "logs")
    wl = {"ef-det-r1": WorkloadLog("det", out)}
    ship = LogShipper(buf, workloads=lambda: wl, send=server, cursors=tmp_path / "logs" / "cursors.json")
    buf.add("agent started", source="agent", level="info")
    ship.tick()
    assert [[r["msg"] for r in b] for b in server.got] == [["agent started", "ready"]]
    assert server.got[0][1]["workload"] == "det"

    server.up = False
    for i in range(3):
        with out.open("a") as f:
            f.write(f'{{"level": "warning", "msg": "request {i}"}}\n')
        ship.tick()
    assert len(buf.batches()) == 3
    assert ship.last_error == "cannot reach the server"
    assert buf.stats()["lines"] == 3

    # an agent restart while away: positions and batches come from disk, nothing read twice
    buf2 = LogBuffer(tmp_path / "logs")
    ship2 = LogShipper(buf2, workloads=lambda: wl, send=server, cursors=tmp_path / "logs" / "cursors.json")
    server.up = True
    server.refuse = {buf2.batches()[1].seq}  # one batch the server refuses for good: dropped, not blocking
    ship2.tick()
    msgs = [[r["msg"] for r in b] for b in server.got[1:]]
    assert msgs == [
        ['{"level": "warning", "msg": "request 0"}'],
        ['{"level": "warning", "msg": "request 2"}'],
    ]
    assert server.got[1][0]["level"] == "warning"
    assert buf2.batches() == []
    assert buf2.stats()["dropped"] == 1
    assert buf2.stats()["shipped"] == 4


def _proc_files(tree: Path) -> None:
    (tree / "proc" / "stat").write_text(
        "cpu  1000 20 300 50000 40 0 10 0 0 0\ncpu0 500 10 150 25000 20 0 5 0 0 0\n"
        "cpu1 500 10 150 25000 20 0 5 0 0 0\nintr 1\n"
    )
    (tree / "proc" / "loadavg").write_text("0.52 0.40 0.30 1/100 4242\n")


def test_device_metrics_from_a_jetson_tree(tmp_path: Path) -> None:
    tree = jetson_orin_nano(tmp_path)
    _proc_files(tmp_path)
    fams = {
        f.name: f for f in DeviceMetrics(proc=tmp_path / "proc", sys=tmp_path / "sys", clk_tck=100).collect()
    }
    cpu = {s[0]["mode"]: s[1] for s in fams["edgefleet_device_cpu_seconds_total"].samples}
    assert cpu["user"] == 10.0
    assert cpu["idle"] == 500.0
    assert fams["edgefleet_device_cpus"].samples == [({}, 2.0)]
    assert fams["edgefleet_device_load1"].samples == [({}, 0.52)]
    mem = {s[0]["kind"]: s[1] for s in fams["edgefleet_device_memory_bytes"].samples}
    assert mem["total"] == 7_620_240 * 1024
    temps = {s[0]["type"]: s[1] for s in fams["edgefleet_device_temperature_celsius"].samples}
    assert temps == {"cpu-thermal": 47.5, "gpu-thermal": 46.281, "tj-thermal": 48.125}
    util = fams["edgefleet_device_accelerator_utilization_ratio"].samples
    assert util == [({"accelerator": "17000000.gpu"}, 0.312)]
    del tree


def test_device_metrics_npu_drm_hwmon_and_nvidia_smi(tmp_path: Path) -> None:
    tree = x86_intel_npu_uvc(tmp_path)
    tree.write("sys/class/accel/accel0/device/npu_busy_time_us", "2500000\n")
    tree.write("sys/class/drm/card1/device/gpu_busy_percent", "37\n")
    tree.write("sys/class/drm/card1/device/hwmon/hwmon3/power1_average", "15250000\n")
    tree.write("sys/class/drm/card1-DP-1/status", "connected\n")
    tree.write("sys/class/hwmon/hwmon0/name", "rapl\n")
    tree.write("sys/class/hwmon/hwmon0/power1_input", "8000000\n")
    calls = []

    def smi() -> str:
        calls.append(1)
        return "0, 87, 312.45, 64, 40960, 81559\n1, [N/A], [N/A], 40, 0, 81559\n"

    t = [0.0]
    dm = DeviceMetrics(proc=tmp_path / "proc", sys=tmp_path / "sys", nvidia_smi=smi, clock=lambda: t[0])
    fams = {f.name: f for f in dm.collect()}
    util = {s[0]["accelerator"]: s[1] for s in fams["edgefleet_device_accelerator_utilization_ratio"].samples}
    assert util == {"card1": 0.37, "nvidia0": 0.87}
    power = {s[0]["accelerator"]: s[1] for s in fams["edgefleet_device_accelerator_power_watts"].samples}
    assert power == {"card1": 15.25, "nvidia0": 312.45}
    busy = fams["edgefleet_device_accelerator_busy_seconds_total"].samples
    assert busy == [({"accelerator": "accel0"}, 2.5)]
    assert fams["edgefleet_device_power_watts"].samples == [({"sensor": "rapl", "input": "power1"}, 8.0)]
    mem = fams["edgefleet_device_accelerator_memory_bytes"].samples
    assert ({"accelerator": "nvidia0", "kind": "used"}, 40960 * 1024 * 1024) in mem
    temps = {s[0]["zone"]: s[1] for s in fams["edgefleet_device_temperature_celsius"].samples}
    assert temps["nvidia0"] == 64
    assert temps["nvidia1"] == 40
    dm.collect()
    assert len(calls) == 1  # nvidia-smi at most every gpu_every_s
    t[0] = 11.0
    dm.collect()
    assert len(calls) == 2
    # a machine with nothing: no family, no error
    empty = DeviceMetrics(proc=tmp_path / "nothing", sys=tmp_path / "nothing")
    assert empty.collect() == []


def test_device_metric_names_follow_the_rules(tmp_path: Path) -> None:
    tree = x86_intel_npu_uvc(tmp_path)
    tree.write("sys/class/drm/card1/device/gpu_busy_percent", "37\n")
    _proc_files(tmp_path)
    for fam in DeviceMetrics(proc=tmp_path / "proc", sys=tmp_path / "sys").collect():
        assert re.match(r"^edgefleet_device_[a-z0-9_]+$", fam.name), fam.name
        assert fam.name.endswith("_total") == (fam.kind == "counter"), fam.name
        unit = fam.name.removesuffix("_total").rsplit("_", 1)[-1]
        assert unit in BASE_UNITS or fam.name in {"edgefleet_device_cpus", "edgefleet_device_load1"}


def test_exposition_escapes_labels_and_lists_samples_for_remote_write() -> None:
    fam = Family("edgefleet_agent_x_total", "counter", "x")
    fam.add(3, reason='a "quoted"\nline\\')
    gauge = Family("edgefleet_agent_y_ratio", "gauge", "y").add(0.25).add(float("nan"), kind="n")
    text = render([fam, gauge])
    assert text.splitlines() == [
        "# HELP edgefleet_agent_x_total x",
        "# TYPE edgefleet_agent_x_total counter",
        'edgefleet_agent_x_total{reason="a \\"quoted\\"\\nline\\\\"} 3',
        "# HELP edgefleet_agent_y_ratio y",
        "# TYPE edgefleet_agent_y_ratio gauge",
        "edgefleet_agent_y_ratio 0.25",
        'edgefleet_agent_y_ratio{kind="n"} NaN',
    ]
    got = samples([gauge], {"device": "dev_1"})
    assert got[0] == ({"device": "dev_1", "__name__": "edgefleet_agent_y_ratio"}, 0.25)


def _agent_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgefleet.agent", "run", "--state-dir", "/nonexistent/x", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--remote-write-url", "prometheus:9090"],
            "--remote-write-url: 'prometheus:9090' is not an http(s) URL",
        ),
        (["--remote-write-username", "u"], "--remote-write-username needs --remote-write-url"),
        (
            [
                "--remote-write-url",
                "http://p/api/v1/write",
                "--remote-write-bearer-token-file",
                "/nonexistent",
            ],
            "--remote-write-bearer-token-file: cannot read /nonexistent",
        ),
        (
            ["--remote-write-url", "http://p/api/v1/write", "--remote-write-interval", "0"],
            "at least 1 second",
        ),
        (["--log-buffer-bytes", "10"], "--log-buffer-bytes: at least 65536"),
    ],
)
def test_agent_refuses_bad_observability_options(args: list[str], message: str) -> None:
    r = _agent_cli(*args)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr


# Recorded on an NVIDIA H200 (driver 580.159.04, nvidia-smi 580.159.04) with the agent's own query:
# nvidia-smi --query-gpu=index,utilization.gpu,power.draw,temperature.gpu,memory.used,memory.total
#            --format=csv,noheader,nounits
H200_IDLE = "0, 0, 113.93, 41, 0, 143771\n"


def test_device_metrics_from_a_recorded_h200(tmp_path: Path) -> None:
    dm = DeviceMetrics(proc=tmp_path, sys=tmp_path, nvidia_smi=lambda: H200_IDLE)
    fams = {f.name: f.samples for f in dm.collect()}
    assert fams["edgefleet_device_accelerator_utilization_ratio"] == [({"accelerator": "nvidia0"}, 0.0)]
    assert fams["edgefleet_device_accelerator_power_watts"] == [({"accelerator": "nvidia0"}, 113.93)]
    assert fams["edgefleet_device_temperature_celsius"] == [({"zone": "nvidia0", "type": "nvidia-gpu"}, 41.0)]
    assert ({"accelerator": "nvidia0", "kind": "total"}, 143771 * 1024 * 1024) in fams[
        "edgefleet_device_accelerator_memory_bytes"
    ]


def test_log_batches_stay_under_the_batch_size(tmp_path: Path) -> None:
    """A burst of long lines is split into batches the server accepts (uncompressed size bounded)."""
    from edgefleet.agent.logbuffer import MAX_BATCH_BYTES

    buf = LogBuffer(tmp_path, capacity_bytes=64 << 20)
    for i in range(1000):
        buf.add(f"{i:04d} " + "y" * (MAX_LINE_CHARS - 10), source="workload", workload="det")
    buf.seal()
    batches = buf.batches()
    assert len(batches) > 1
    assert all(len(gzip.decompress(b.body())) <= MAX_BATCH_BYTES for b in batches)
    got = [str(r["msg"])[:4] for b in batches for r in _lines(b)]
    assert got == [f"{i:04d}" for i in range(1000)]


def test_remote_write_auth_headers_come_from_files(tmp_path: Path) -> None:
    import base64

    from edgefleet.agent.errors import AgentInputError
    from edgefleet.agent.remote import RemoteWriteConfig

    token = tmp_path / "token"
    token.write_text("abc.def\n")
    password = tmp_path / "password"
    password.write_text("pw:with:colons\n")
    url = "http://prom:9090/api/v1/write"
    assert RemoteWriteConfig(url).headers() == {}
    assert RemoteWriteConfig(url, bearer_token_file=token).headers() == {"Authorization": "Bearer abc.def"}
    basic = RemoteWriteConfig(url, username="edge", password_file=password).headers()["Authorization"]
    assert base64.b64decode(basic.removeprefix("Basic ")) == b"edge:pw:with:colons"
    token.write_text("rotated\n")  # read at every push: a rotated secret is picked up
    assert RemoteWriteConfig(url, bearer_token_file=token).headers()["Authorization"] == "Bearer rotated"
    with pytest.raises(AgentInputError, match="not both"):
        RemoteWriteConfig(url, bearer_token_file=token, username="edge").headers()


def test_remote_write_failures_are_counted_and_the_loop_goes_on() -> None:
    import threading
    from types import SimpleNamespace

    from edgefleet.agent.metrics import AgentStats
    from edgefleet.agent.remote import RemoteWriteConfig, run_remote_write
    from edgefleet.telemetry.remote_write import RemoteWriteError

    agent = SimpleNamespace(stats=AgentStats())
    halt = threading.Event()
    results = [RemoteWriteError("refused with HTTP 401"), RemoteWriteError("HTTP 503"), 5, 5]

    def push() -> int:
        r = results.pop(0)
        if not results:
            halt.set()
        if isinstance(r, Exception):
            raise r
        return r

    config = RemoteWriteConfig("http://prom/api/v1/write", interval_s=0.01)
    run_remote_write(agent, config, halt, push=push)  # type: ignore[arg-type]
    assert agent.stats.remote_writes == {"ok": 2, "error": 2}
