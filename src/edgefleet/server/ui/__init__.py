"""The fleet web UI at ``/ui``: static files shipped in the package, and one summary endpoint.

Everything the browser loads comes from ``static/`` (uPlot vendored under ``static/vendor``), so
the UI works with no network beyond the server. The pages talk to ``/api/v1`` with the bearer
token the user signs in with; the server enforces roles, the UI only hides what a role cannot do.

``GET /api/v1/projects/{project}/fleet-summary`` folds what the overview needs into one read:
devices by status, versions in the field, devices in a crash loop, offline devices, rollouts.
``GET /api/v1/projects/{project}/rollouts/{id}/gates`` shows each gate's threshold next to the
numbers the updated devices reported, and each wave's planned, updated and ready counts.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlalchemy import select

from edgefleet.server.api.deps import Ctx, role
from edgefleet.server.api.errors import ERROR_RESPONSES
from edgefleet.server.auth import Caller
from edgefleet.server.devices import device_status
from edgefleet.server.errors import ServerNotFoundError
from edgefleet.server.rollout import engine as eng
from edgefleet.server.store.models import Device, Rollout
from edgefleet.server.tenancy import get_project

__all__ = ["STATIC_DIR", "router"]

STATIC_DIR = Path(__file__).parent / "static"
ACTIVE_PHASES = frozenset({"pending", "rolling", "baking", "awaiting_approval", "paused"})
HALTED_PHASES = frozenset({"paused", "aborted"})
LIST_CAP = 50
# Every asset is local: the policy makes the browser refuse anything from elsewhere.
CSP = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'"
)
TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}

router = APIRouter()
Viewer = Annotated[Caller, Depends(role("viewer"))]


@router.get("/ui", include_in_schema=False)
def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/{path:path}", include_in_schema=False)
def ui_file(path: str) -> Response:
    """A static asset, or the single page (``index.html``) for any other path under /ui."""
    root = STATIC_DIR.resolve()
    try:
        target = (root / path).resolve() if path else root / "index.html"
        found = target.is_relative_to(root) and target.is_file()
    except (OSError, ValueError):  # a NUL byte, a name too long: not a file of ours
        found = False
    if not found:
        target = root / "index.html"
    cache = "no-cache" if target.suffix == ".html" else "public, max-age=300"
    return FileResponse(
        target,
        media_type=TYPES.get(target.suffix),
        headers={"Content-Security-Policy": CSP, "Cache-Control": cache, "X-Content-Type-Options": "nosniff"},
    )


@router.get("/api/v1/projects/{project}/fleet-summary", tags=["devices"], responses=ERROR_RESPONSES)
def fleet_summary(project: str, ctx: Ctx, _c: Viewer) -> dict[str, Any]:
    """Devices by status, versions in the field, crash loops, offline devices and rollouts, in one read."""
    now = ctx.now()
    statuses: Counter[str] = Counter()
    versions: Counter[tuple[str, str]] = Counter()
    crash: list[dict[str, Any]] = []
    offline: list[dict[str, Any]] = []
    with ctx.db.session() as s:
        get_project(s, project)
        for d in s.scalars(select(Device).where(Device.project_id == project)):
            st = device_status(d, now, ctx.settings.offline_after_seconds)
            statuses[st] += 1
            if st == "offline" and len(offline) < LIST_CAP:
                offline.append({"id": d.id, "name": d.name, "last_seen_at": d.last_seen_at})
            if st == "decommissioned":
                continue
            health = d.health if isinstance(d.health, dict) else {}
            for w in health.get("workloads") or []:
                if isinstance(w, dict) and (w.get("crash_loops") or 0) > 0 and len(crash) < LIST_CAP:
                    crash.append(
                        {
                            "id": d.id,
                            "name": d.name,
                            "deployment": w.get("deployment"),
                            "crash_loops": w["crash_loops"],
                        }
                    )
            deployment_of = {
                w.get("release"): w.get("deployment")
                for w in health.get("workloads") or []
                if isinstance(w, dict)
            }
            reported = d.reported if isinstance(d.reported, dict) else {}
            for w in reported.get("workloads") or []:
                if isinstance(w, dict) and w.get("bundle"):
                    dep = w.get("deployment") or deployment_of.get(w.get("release")) or ""
                    versions[(str(dep), str(w["bundle"]))] += 1
        rollouts = []
        for r in s.scalars(
            select(Rollout)
            .where(Rollout.project_id == project)
            .order_by(Rollout.created_at.desc())
            .limit(200)
        ):
            state = r.state if isinstance(r.state, dict) else {}
            if r.phase in ACTIVE_PHASES or r.phase in HALTED_PHASES:
                rollouts.append(
                    {
                        "id": r.id,
                        "deployment_id": r.deployment_id,
                        "phase": r.phase,
                        "reason": state.get("reason"),
                        "updated_at": r.updated_at,
                    }
                )
    return {
        "devices": dict(statuses),
        "versions": [
            {"deployment": k[0], "version": k[1], "devices": n} for k, n in sorted(versions.items())
        ],
        "crash_loops": crash,
        "offline": offline,
        "rollouts": rollouts,
    }


@router.get(
    "/api/v1/projects/{project}/rollouts/{rollout_id}/gates", tags=["rollouts"], responses=ERROR_RESPONSES
)
def rollout_gates(project: str, rollout_id: str, ctx: Ctx, _c: Viewer) -> dict[str, Any]:
    """Each gate with its threshold and the observed numbers; each wave with its counts."""
    with ctx.db.session() as s:
        row = s.get(Rollout, rollout_id)
        if row is None or row.project_id != project:
            raise ServerNotFoundError(f"rollout {rollout_id!r} not found in project {project!r}")
        state = eng.RolloutState.from_json(row.state)
    return gate_view(state)


def gate_view(state: eng.RolloutState) -> dict[str, Any]:
    """Gates (threshold, observed, ok) over the updated devices, and per-wave counts."""
    g = state.strategy.gates
    updated = {d: m for d, m in state.members.items() if m.target == "to"}
    healths = [m.health for m in updated.values() if m.health is not None]
    n = len(updated)
    ready = sum(1 for h in healths if h.ready and not h.failed)
    failing = sum(1 for m in updated.values() if eng._why(m.health, state.strategy) is not None)
    gates: list[dict[str, Any]] = [
        _gate("ready ratio", ">=", g.min_ready_ratio, ready / n if n else None, f"{ready} of {n} ready"),
        _gate(
            "failure ratio",
            "<=",
            g.max_failure_ratio,
            failing / n if n else None,
            f"{failing} of {n} failing",
        ),
        _gate(
            "crash loops (max)", "<=", g.max_crash_loops, max((h.crash_loops for h in healths), default=None)
        ),
    ]
    if g.max_error_rate is not None:
        rates = [h.error_rate for h in healths if h.error_rate is not None]
        gates.append(_gate("error rate (max)", "<=", g.max_error_rate, max(rates, default=None)))
    if g.max_p95_latency_ms is not None:
        lat = [h.p95_latency_ms for h in healths if h.p95_latency_ms is not None]
        gates.append(_gate("p95 latency ms (max)", "<=", g.max_p95_latency_ms, max(lat, default=None)))
    for c in g.custom:
        vals = [dict(h.metrics)[c.metric] for h in healths if c.metric in dict(h.metrics)]
        if c.min is not None:
            gates.append(_gate(f"{c.metric} (min)", ">=", c.min, min(vals, default=None)))
        if c.max is not None:
            gates.append(_gate(f"{c.metric} (max)", "<=", c.max, max(vals, default=None)))
    waves = []
    for i, planned in enumerate(state.plan):
        members = [m for m in state.members.values() if m.wave == i]
        waves.append(
            {
                "wave": i + 1,
                "target": planned,
                "devices": len(members),
                "updated": sum(1 for m in members if m.target == "to"),
                "ready": sum(1 for m in members if m.target == "to" and m.health and m.health.ready),
                "state": "done" if i < state.wave else ("current" if i == state.wave else "pending"),
            }
        )
    return {"phase": state.phase.value, "wave": state.wave + 1, "gates": gates, "waves": waves}


def _gate(name: str, op: str, threshold: float, observed: float | None, detail: str = "") -> dict[str, Any]:
    ok = None if observed is None else (observed >= threshold if op == ">=" else observed <= threshold)
    return {"gate": name, "op": op, "threshold": threshold, "observed": observed, "ok": ok, "detail": detail}
