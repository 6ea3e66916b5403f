"""Every /metrics passes promtool; a real Prometheus scrapes a server, an agent and `edgefleet serve`;
the dashboards and alert rules only use metric names the code exports."""

from __future__ import annotations

import subprocess
from contextlib import ExitStack
from pathlib import Path

import pytest

from edgefleet.testing.require import require_tool
from tests.integration.observe.agent_proc import DEPLOYMENT, running_agent
from tests.integration.observe.conftest import LiveFleet
from tests.integration.observe.prom import run_prometheus
from tests.integration.observe.sources import SOURCES, http_text, metric_names, running_serve

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"


def _rollout_with_crash_loop(fleet: LiveFleet) -> None:
    fleet.upload("cam", "9.9.9")
    fleet.deploy("cam", "cam", "9.9.9", "site=field", on_failure="pause")
    fleet.wait(
        lambda: fleet.api("GET", "/deployments/cam").json()["rollout"]["phase"] == "paused", what="paused"
    )


def test_metrics_pass_promtool_and_dashboards_use_exported_names(
    live_fleet: LiveFleet, tmp_path: Path
) -> None:
    require_tool("promtool")
    _rollout_with_crash_loop(live_fleet)
    exported: dict[str, set[str]] = {}
    with ExitStack() as stack:
        for name, source in SOURCES.items():
            text = stack.enter_context(source(live_fleet, tmp_path / name))
            check = subprocess.run(
                ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
            )
            assert check.returncode == 0, f"{name}: {check.stdout}{check.stderr}"
            assert not check.stdout.strip(), f"{name}: {check.stdout}"
            exported[name] = metric_names(text)
    every = set().union(*exported.values())
    assert "edgefleet_server_crash_looping_devices" in exported["server"]
    assert "edgefleet_serve_request_duration_seconds_bucket" in exported["serve"]
    assert {
        "edgefleet_agent_reconciles_total",
        "edgefleet_agent_log_buffer_lines",
        "edgefleet_device_accelerator_utilization_ratio",
        "edgefleet_workload_state",
        "edgefleet_workload_cpu_seconds_total",
    } <= exported["agent"]

    used = used_metric_names()
    assert used, "no query found in deploy/"
    missing = {where: names - every for where, names in used.items() if names - every}
    assert not missing, f"queries use metrics nothing exports: {missing}"


def used_metric_names() -> dict[str, set[str]]:
    """Metric names used by every dashboard panel query and every alert/recording rule."""
    from tests.unit.observe.test_observe_deploy import (
        BUILTIN,
        dashboard_queries,
        promql_metric_names,
        rule_queries,
    )

    out: dict[str, set[str]] = {}
    for where, expr in [
        *dashboard_queries(DEPLOY / "grafana"),
        *rule_queries(DEPLOY / "prometheus" / "rules"),
    ]:
        names = {n for n in promql_metric_names(expr) if not n.startswith("edgefleet:") and n not in BUILTIN}
        if names:
            out.setdefault(where, set()).update(names)
    return out


def test_prometheus_scrapes_server_agent_and_serve(live_fleet: LiveFleet, tmp_path: Path) -> None:
    _rollout_with_crash_loop(live_fleet)
    with running_serve(tmp_path / "serve") as serve, running_agent(live_fleet, tmp_path / "agent") as agent:
        assert "edgefleet_serve_requests_total" in http_text(f"http://{serve.http}/metrics")
        server = live_fleet.url.removeprefix("http://")
        targets = {
            "edgefleet-server": server,
            "edgefleet-serve": serve.http,
            "edgefleet-agent": agent.metrics,
        }
        with run_prometheus(tmp_path / "prom", targets) as prom:
            up = prom.wait_for(
                'up{job=~"edgefleet-.*"} == 1 and on() count(up{job=~"edgefleet-.*"} == 1) == 3'
            )
            assert {r["metric"]["job"] for r in up} == set(targets)
            a = '{job="edgefleet-agent"}'
            assert float(prom.wait_for(f"edgefleet_agent_server_reachable{a}")[0]["value"][1]) == 1
            ready = prom.wait_for(
                f'edgefleet_workload_ready{{job="edgefleet-agent",deployment="{DEPLOYMENT}"}}'
            )
            assert float(ready[0]["value"][1]) == 1
            running = prom.wait_for('edgefleet_workload_state{job="edgefleet-agent",state="running"} == 1')
            assert running[0]["metric"]["deployment"] == DEPLOYMENT
            assert prom.wait_for(f"edgefleet_workload_memory_bytes{a} > 0")
            assert prom.wait_for('rate(edgefleet_device_cpu_seconds_total{job="edgefleet-agent"}[10s])')
            reconciled = prom.wait_for('edgefleet_agent_reconciles_total{job="edgefleet-agent",result="ok"}')
            assert float(reconciled[0]["value"][1]) >= 1
            devices = prom.wait_for('edgefleet_server_devices{job="edgefleet-server",status="online"}')
            assert float(devices[0]["value"][1]) == 9  # eight simulated devices and the real agent
            crash = prom.wait_for("edgefleet_server_crash_looping_devices")
            assert crash[0]["metric"]["deployment"] == "cam"
            paused = prom.wait_for('edgefleet_server_rollouts{phase="paused"} > 0')
            assert float(paused[0]["value"][1]) == 1
            served = prom.wait_for('edgefleet_serve_requests_total{job="edgefleet-serve",model="affine"}')
            assert float(served[0]["value"][1]) >= 1
            rate = prom.wait_for(
                'sum by (route) (edgefleet_server_request_duration_seconds_count{api="device"})'
            )
            assert any("desired-state" in r["metric"]["route"] for r in rate)
