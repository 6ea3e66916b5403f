"""Workload health the devices report, as Prometheus gauges read at scrape time.

- ``edgefleet_server_workloads{project, deployment, status}``: workloads by reported status
  (``running``, ``failed``, ...), over active devices;
- ``edgefleet_server_crash_looping_devices{project, deployment}``: devices whose workload reports
  at least one crash loop (what the ``EdgefleetCrashLoop`` alert reads).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import select

from edgefleet.server.context import ServerContext
from edgefleet.server.store.models import Device
from edgefleet.telemetry.metrics import metric_name

__all__ = ["FleetHealthCollector"]


class FleetHealthCollector(Collector):
    """Workloads by status and crash-looping devices, per project and deployment."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[GaugeMetricFamily]:
        workloads = GaugeMetricFamily(
            metric_name("server", "workloads"),
            "Workloads on active devices by reported status",
            labels=["project", "deployment", "status"],
        )
        crash = GaugeMetricFamily(
            metric_name("server", "crash_looping_devices"),
            "Devices whose workload reports crash loops",
            labels=["project", "deployment"],
        )
        by_status: Counter[tuple[str, str, str]] = Counter()
        looping: Counter[tuple[str, str]] = Counter()
        with self.ctx.db.session() as s:
            rows = s.execute(select(Device.project_id, Device.health).where(Device.status == "active")).all()
        for project, health in rows:
            items = health.get("workloads") if isinstance(health, dict) else None
            for w in items or []:
                if not isinstance(w, dict):
                    continue
                dep = str(w.get("deployment") or "")
                by_status[(project, dep, str(w.get("status") or "unknown"))] += 1
                loops = w.get("crash_loops")
                if isinstance(loops, int | float) and loops > 0:
                    looping[(project, dep)] += 1
        for key, n in sorted(by_status.items()):
            workloads.add_metric(list(key), n)
        for key2, n in sorted(looping.items()):
            crash.add_metric(list(key2), n)
        yield workloads
        yield crash
