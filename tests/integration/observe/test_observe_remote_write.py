"""Remote-write into a real Prometheus (``--web.enable-remote-write-receiver``), then PromQL sees it:
from a registry, and from a running device agent."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from edgefleet.telemetry.remote_write import RemoteWriteError, RemoteWriter, TimeSeries, push_registry
from tests.integration.observe.agent_proc import DEPLOYMENT, running_agent
from tests.integration.observe.conftest import LiveFleet
from tests.integration.observe.prom import run_prometheus

pytestmark = pytest.mark.integration


def test_push_registry_into_prometheus(tmp_path: Path) -> None:
    reg = CollectorRegistry()
    Counter("edgefleet_agent_test_restarts", "restarts", ["workload"], registry=reg).labels(
        workload="det"
    ).inc(4)
    Gauge("edgefleet_agent_test_temperature_celsius", "temp", registry=reg).set(61.5)
    Histogram("edgefleet_agent_test_latency_seconds", "lat", buckets=(0.01, 0.1), registry=reg).observe(0.05)
    with run_prometheus(tmp_path, receiver=True) as prom:
        url = prom.url + "/api/v1/write"
        n = push_registry(url, reg, extra_labels={"device": "dev_abc", "job": "edgefleet-agent"})
        assert n >= 6
        got = prom.wait_for(
            'edgefleet_agent_test_restarts_total{device="dev_abc",workload="det"}', timeout=30
        )
        assert float(got[0]["value"][1]) == 4
        assert got[0]["metric"]["job"] == "edgefleet-agent"
        temp = prom.wait_for("edgefleet_agent_test_temperature_celsius", timeout=30)
        assert float(temp[0]["value"][1]) == 61.5
        le = prom.wait_for('edgefleet_agent_test_latency_seconds_bucket{le="0.1"}', timeout=30)
        assert float(le[0]["value"][1]) == 1
        # a second push later: the series continues
        time.sleep(1.1)
        Gauge("edgefleet_agent_test_second", "s", registry=reg).set(2)
        push_registry(url, reg, extra_labels={"device": "dev_abc"})
        prom.wait_for("edgefleet_agent_test_second", timeout=30)
        # a sample far in the past is refused by Prometheus with a 4xx: reported, not retried
        with pytest.raises(RemoteWriteError, match="not retried"):
            RemoteWriter(url, sleep=lambda _s: None).push(
                [TimeSeries({"__name__": "edgefleet_agent_test_old"}, ((1.0, 1000),))]
            )


def test_agent_pushes_its_metrics_with_basic_auth(live_fleet: LiveFleet, tmp_path: Path) -> None:
    """An agent with --remote-write-url pushes its, the device's and its workload's series into a
    Prometheus that requires basic auth; PromQL finds them labelled with the device."""
    secret = tmp_path / "rw-password"
    secret.write_text("s3cret-pw\n")
    with run_prometheus(tmp_path / "prom", receiver=True, basic_auth=("edge", "s3cret-pw")) as prom:
        url = prom.url + "/api/v1/write"
        # without the credentials the receiver refuses (401), and that is final
        with pytest.raises(RemoteWriteError, match="HTTP 401"):
            RemoteWriter(url, sleep=lambda _s: None).push(
                [TimeSeries({"__name__": "edgefleet_agent_test_noauth"}, ((1.0, int(time.time() * 1000)),))]
            )
        args = ("--remote-write-url", url, "--remote-write-interval", "1")
        auth = ("--remote-write-username", "edge", "--remote-write-password-file", str(secret))
        with running_agent(live_fleet, tmp_path / "agent", *args, *auth) as agent:
            dev = agent.device
            up = prom.wait_for(f'edgefleet_agent_up{{device="{dev}"}}', timeout=60)
            assert up[0]["metric"]["job"] == "edgefleet-agent"
            assert up[0]["metric"]["instance"] == dev
            ready = prom.wait_for(
                f'edgefleet_workload_ready{{device="{dev}",deployment="{DEPLOYMENT}"}} == 1'
            )
            assert ready[0]["metric"]["version"] == "1.0.0"
            mem = prom.wait_for(f'edgefleet_device_memory_bytes{{device="{dev}",kind="total"}}')
            assert float(mem[0]["value"][1]) > 0
            cpu = prom.wait_for(
                f'rate(edgefleet_device_cpu_seconds_total{{device="{dev}",mode="idle"}}[30s])'
            )
            assert float(cpu[0]["value"][1]) >= 0
            reconciles = prom.wait_for(f'edgefleet_agent_reconciles_total{{device="{dev}",result="ok"}} >= 1')
            assert reconciles
            assert agent.status()["remote_writes"]["ok"] >= 1
