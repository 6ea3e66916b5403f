"""The FastAPI application: routers, error mapping, metrics, and the background loops.

Background loops (started with the app, stopped with it):

- the rollout driver (every ``rollout_tick_seconds``), holding leases on the rollouts it drives;
- the last-seen flusher, one UPDATE batch every ``last_seen_flush_seconds``;
- event and log compaction every ten minutes (retention by age and by count per device).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime

import anyio
from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import bindparam, update

from edgefleet import __version__
from edgefleet.server import ui
from edgefleet.server.api import device, fleet, releases
from edgefleet.server.api.errors import install_error_handlers
from edgefleet.server.api.observe import FleetCollector, GuessCollector, ServerMetrics, TimingAuditMiddleware
from edgefleet.server.context import ServerContext
from edgefleet.server.devices import compact_events
from edgefleet.server.logs import compact_logs
from edgefleet.server.rollout.driver import RolloutDriver
from edgefleet.server.store.models import Device
from edgefleet.server.ui.fleet_metrics import FleetHealthCollector
from edgefleet.telemetry.logs import get_logger
from edgefleet.telemetry.metrics import new_registry

__all__ = ["create_app", "flush_last_seen"]

log = get_logger(__name__)
COMPACT_EVERY_SECONDS = 600.0


def flush_last_seen(ctx: ServerContext) -> int:
    """Write the buffered last-seen times in one batch; returns how many devices."""
    seen = ctx.last_seen.drain()
    if not seen:
        return 0
    rows = [{"b_id": d, "b_at": datetime.fromtimestamp(t, tz=UTC)} for d, t in seen.items()]
    stmt = (
        update(Device)
        .where(Device.id == bindparam("b_id"))
        .values(last_seen_at=bindparam("b_at"))
        .execution_options(synchronize_session=False)
    )
    with ctx.db.session(write=True) as s:
        s.connection().execute(stmt, rows)
    return len(rows)


def create_app(
    ctx: ServerContext, *, background: bool = True, driver: RolloutDriver | None = None
) -> FastAPI:
    """The server app over ``ctx``; ``background=False`` leaves the loops to the caller (tests)."""
    registry = new_registry()
    metrics = ServerMetrics(registry)
    registry.register(FleetCollector(ctx))
    registry.register(FleetHealthCollector(ctx))
    registry.register(GuessCollector(ctx))
    the_driver = driver or RolloutDriver(ctx)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        ctx.notifier.bind(asyncio.get_running_loop())
        tasks: list[asyncio.Task[None]] = []
        if background:
            tasks = [
                asyncio.create_task(
                    _every(ctx.settings.rollout_tick_seconds, the_driver.tick, "rollout driver")
                ),
                asyncio.create_task(
                    _every(
                        ctx.settings.last_seen_flush_seconds, lambda: flush_last_seen(ctx), "last-seen flush"
                    )
                ),
                asyncio.create_task(_every(COMPACT_EVERY_SECONDS, lambda: _compact(ctx), "event compaction")),
            ]
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with suppress(asyncio.CancelledError):
                    await t
            if background:
                await anyio.to_thread.run_sync(lambda: flush_last_seen(ctx))
                await anyio.to_thread.run_sync(the_driver.release)

    app = FastAPI(
        title="edgefleet control plane",
        version=__version__,
        description="Management API (/api/v1, bearer tokens) and device API (/device/v1, signed requests).",
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.state.driver = the_driver
    app.state.registry = registry
    install_error_handlers(app)
    app.include_router(fleet.router)
    app.include_router(releases.router)
    app.include_router(device.router)
    app.include_router(ui.router)

    @app.get("/metrics", include_in_schema=False)
    def metrics_endpoint() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok", "version": __version__}

    app.add_middleware(TimingAuditMiddleware, ctx=ctx, metrics=metrics)
    return app


def _compact(ctx: ServerContext) -> int:
    with ctx.db.session(write=True) as s:
        n = compact_events(
            s, ctx.now(), ctx.settings.event_retention_days, ctx.settings.max_events_per_device
        )
    with ctx.db.session(write=True) as s:
        n += compact_logs(
            s, ctx.now(), ctx.settings.log_retention_days, ctx.settings.max_log_lines_per_device
        )
    if ctx.db.is_sqlite:
        with ctx.db.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.exec_driver_sql("PRAGMA incremental_vacuum")
    return n


async def _every(seconds: float, work: Callable[[], object], name: str, *, adaptive: bool = False) -> None:
    """Run ``work`` every ``seconds``; ``adaptive`` waits at least 4x the last pass (at most ~20% busy)."""
    while True:
        start = time.monotonic()
        try:
            await anyio.to_thread.run_sync(work)
        except Exception:  # a failing pass is logged and retried next period, never kills the loop
            log.exception("background loop failed", extra={"loop": name})
        took = time.monotonic() - start
        await asyncio.sleep(max(seconds, 4 * took) if adaptive else seconds)
