"""``/metrics`` (a registry per app) and the ASGI middleware that times requests and audits writes.

Metrics:

- ``edgefleet_server_request_duration_seconds{api, method, route, status}`` (histogram)
- ``edgefleet_server_devices{status}`` (gauge, read from the database at scrape time)
- ``edgefleet_server_rollouts{phase}`` and ``edgefleet_server_rollout_progress_ratio{deployment}``
  (updated devices / devices in the rollout, active rollouts only)
- ``edgefleet_server_desired_state_polls_total{result}`` (``changed`` / ``not_modified``)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import anyio
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgefleet.server.context import ServerContext
from edgefleet.server.rollout import engine as eng
from edgefleet.server.store.models import AuditEntry, Deployment, Device, Rollout
from edgefleet.telemetry.logs import get_logger
from edgefleet.telemetry.metrics import metric_name

__all__ = ["FleetCollector", "GuessCollector", "ServerMetrics", "TimingAuditMiddleware"]

log = get_logger(__name__)
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ServerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Histogram(
            metric_name("server", "request_duration", "seconds"),
            "API request latency",
            ["api", "method", "route", "status"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.polls = Counter(
            metric_name("server", "desired_state_polls"),
            "Desired-state polls by result",
            ["result"],
            registry=registry,
        )


class FleetCollector(Collector):
    """Devices by status and rollout progress, read from the database at scrape time."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.ctx.now()
        online_since = now - timedelta(seconds=self.ctx.settings.offline_after_seconds)
        devices = GaugeMetricFamily(metric_name("server", "devices"), "Devices by status", labels=["status"])
        rollouts = GaugeMetricFamily(metric_name("server", "rollouts"), "Rollouts by phase", labels=["phase"])
        progress = GaugeMetricFamily(
            metric_name("server", "rollout_progress", "ratio"),
            "Share of an active rollout's devices on the new release",
            labels=["deployment"],
        )
        with self.ctx.db.session() as s:
            decom = s.scalar(select(func.count()).where(Device.status == "decommissioned")) or 0
            new = (
                s.scalar(select(func.count()).where(Device.status == "active", Device.last_seen_at.is_(None)))
                or 0
            )
            online = (
                s.scalar(
                    select(func.count()).where(Device.status == "active", Device.last_seen_at >= online_since)
                )
                or 0
            )
            active = s.scalar(select(func.count()).where(Device.status == "active")) or 0
            phases = dict(s.execute(select(Rollout.phase, func.count()).group_by(Rollout.phase)).all())
            live = s.execute(
                select(Deployment.name, Rollout.state)
                .join(Deployment, Deployment.id == Rollout.deployment_id)
                .where(Rollout.phase.in_([p.value for p in eng.Phase if not p.terminal]))
            ).all()
        for status, n in (
            ("online", online),
            ("offline", active - online - new),
            ("new", new),
            ("decommissioned", decom),
        ):
            devices.add_metric([status], n)
        for phase in eng.Phase:
            rollouts.add_metric([phase.value], phases.get(phase.value, 0))
        for name, state in live:
            counts = eng.RolloutState.from_json(state).counts()
            progress.add_metric([name], counts["updated"] / counts["devices"] if counts["devices"] else 0.0)
        yield devices
        yield rollouts
        yield progress


class GuessCollector(Collector):
    """Failed token attempts and the attempts refused by the guess limiter, by token kind."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[CounterMetricFamily]:
        failures = CounterMetricFamily(
            metric_name("server", "auth_failures"), "Failed API-token or join-token attempts", labels=["kind"]
        )
        refused = CounterMetricFamily(
            metric_name("server", "auth_rate_limited"),
            "Attempts refused with 429 after too many failures from one address",
            labels=["kind"],
        )
        g = self.ctx.guesses
        for kind in ("api_token", "join_token"):
            failures.add_metric([kind], g.failures_total.get(kind, 0))
            refused.add_metric([kind], g.refused_total.get(kind, 0))
        yield failures
        yield refused


class TimingAuditMiddleware:
    """Times every request by route template; records each mutating management call in the audit log."""

    def __init__(self, app: ASGIApp, ctx: ServerContext, metrics: ServerMetrics) -> None:
        self.app = app
        self.ctx = ctx
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path: str = scope.get("path", "")
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            api = (
                "device"
                if path.startswith("/device/")
                else "management"
                if path.startswith("/api/")
                else "other"
            )
            self.metrics.requests.labels(api, scope["method"], route, str(status)).observe(
                time.perf_counter() - start
            )
            if api == "device" and route.endswith("/desired-state"):
                self.metrics.polls.labels("not_modified" if status == 304 else "changed").inc()
            if api == "management" and scope["method"] in MUTATING:
                state: dict[str, Any] = scope.get("state", {})
                await anyio.to_thread.run_sync(self._audit, scope, status, state)

    def _audit(self, scope: Scope, status: int, state: dict[str, Any]) -> None:
        path = scope.get("path", "")
        params = scope.get("path_params") or {}
        project = state.get("project") or params.get("project")
        try:
            with self.ctx.db.session(write=True) as s:
                s.add(
                    AuditEntry(
                        at=self.ctx.now(),
                        project_id=project,
                        actor=state.get("actor", "anonymous"),
                        method=scope["method"],
                        path=path[:2000],
                        status=status,
                        details={"route": getattr(scope.get("route"), "path", None)},
                    )
                )
        except Exception:  # the audit write must never turn a done request into a failure
            log.exception("audit write failed", extra={"path": path})
