"""Management API, fleet side: projects, API tokens, join tokens, devices, audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from edgefleet.server.api.deps import (
    Ctx,
    Page,
    Paging,
    current_caller,
    decode_cursor,
    encode_cursor,
    int_cursor,
    role,
)
from edgefleet.server.api.errors import ERROR_RESPONSES
from edgefleet.server.api.schemas import (
    ApiTokenIn,
    ApiTokenOut,
    DeviceOut,
    JoinTokenIn,
    JoinTokenOut,
    LabelsIn,
    ProjectIn,
    ProjectOut,
)
from edgefleet.server.auth import Caller
from edgefleet.server.devices import decommission, device_status, get_device, relabel
from edgefleet.server.errors import ServerInputError, ServerNotFoundError
from edgefleet.server.logs import log_out, query_logs
from edgefleet.server.selectors import Selector
from edgefleet.server.store.models import ApiToken, AuditEntry, Device, DeviceEvent, JoinToken, Project
from edgefleet.server.tenancy import (
    create_api_token,
    create_join_token,
    create_project,
    get_project,
    join_token_state,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)
Viewer = Annotated[Caller, Depends(role("viewer"))]
Operator = Annotated[Caller, Depends(role("operator"))]
Admin = Annotated[Caller, Depends(role("admin"))]
ProjectPath = Annotated[str, "project"]
DEVICE_STATUSES = ("new", "online", "offline", "decommissioned")


@router.get("/whoami", tags=["tokens"])
def whoami(caller: Annotated[Caller, Depends(current_caller)]) -> dict[str, Any]:
    """The calling token's name, role and project scope."""
    return {"token_id": caller.token_id, "name": caller.name, "role": caller.role, "project": caller.project}


@router.get("/projects", tags=["projects"])
def list_projects(ctx: Ctx, caller: Annotated[Caller, Depends(current_caller)]) -> list[ProjectOut]:
    with ctx.db.session() as s:
        q = select(Project).order_by(Project.id)
        if caller.project is not None:
            q = q.where(Project.id == caller.project)
        return [ProjectOut(id=p.id, description=p.description, created_at=p.created_at) for p in s.scalars(q)]


@router.post("/projects", status_code=201, tags=["projects"])
def post_project(body: ProjectIn, ctx: Ctx, caller: Annotated[Caller, Depends(current_caller)]) -> ProjectOut:
    """Create a project (server administrators only: an admin token with no project)."""
    caller.require("admin", None)
    with ctx.db.session(write=True) as s:
        p = create_project(s, body.id, body.description, ctx.now())
        return ProjectOut(id=p.id, description=p.description, created_at=p.created_at)


def _token_out(t: ApiToken, secret: str | None = None) -> ApiTokenOut:
    return ApiTokenOut(
        id=t.id,
        name=t.name,
        role=t.role,
        project=t.project_id,
        created_at=t.created_at,
        expires_at=t.expires_at,
        revoked=t.revoked_at is not None,
        token=secret,
    )


@router.get("/projects/{project}/tokens", tags=["tokens"])
def list_tokens(project: str, ctx: Ctx, _c: Admin) -> list[ApiTokenOut]:
    with ctx.db.session() as s:
        get_project(s, project)
        rows = s.scalars(select(ApiToken).where(ApiToken.project_id == project).order_by(ApiToken.id))
        return [_token_out(t) for t in rows]


@router.post("/projects/{project}/tokens", status_code=201, tags=["tokens"])
def post_token(project: str, body: ApiTokenIn, ctx: Ctx, _c: Admin) -> ApiTokenOut:
    """A new API token scoped to this project; the secret is in the response, once."""
    with ctx.db.session(write=True) as s:
        row, secret = create_api_token(
            s, project, name=body.name, role=body.role, ttl_seconds=body.ttl_seconds, now=ctx.now()
        )
        return _token_out(row, secret)


@router.delete("/projects/{project}/tokens/{token_id}", tags=["tokens"])
def revoke_token(project: str, token_id: str, ctx: Ctx, _c: Admin) -> ApiTokenOut:
    with ctx.db.session(write=True) as s:
        row = s.get(ApiToken, token_id)
        if row is None or row.project_id != project:
            raise ServerNotFoundError(f"no token {token_id!r} in project {project!r}", field="token_id")
        row.revoked_at = row.revoked_at or ctx.now()
        return _token_out(row)


def _join_out(t: JoinToken, now: datetime, secret: str | None = None) -> JoinTokenOut:
    return JoinTokenOut(
        id=t.id,
        name=t.name,
        project=t.project_id,
        max_uses=t.max_uses,
        uses=t.uses,
        labels=t.labels,
        created_at=t.created_at,
        expires_at=t.expires_at,
        state=join_token_state(t, now),
        token=secret,
    )


@router.get("/projects/{project}/join-tokens", tags=["join tokens"])
def list_join_tokens(project: str, ctx: Ctx, _c: Operator) -> list[JoinTokenOut]:
    with ctx.db.session() as s:
        get_project(s, project)
        rows = s.scalars(select(JoinToken).where(JoinToken.project_id == project).order_by(JoinToken.id))
        return [_join_out(t, ctx.now()) for t in rows]


@router.post("/projects/{project}/join-tokens", status_code=201, tags=["join tokens"])
def post_join_token(project: str, body: JoinTokenIn, ctx: Ctx, _c: Operator) -> JoinTokenOut:
    """A token devices enroll with (single- or multi-use, expiring, with labels for the devices)."""
    with ctx.db.session(write=True) as s:
        row, secret = create_join_token(
            s,
            project,
            name=body.name,
            max_uses=body.max_uses,
            ttl_seconds=body.ttl_seconds,
            labels=body.labels,
            now=ctx.now(),
        )
        return _join_out(row, ctx.now(), secret)


@router.delete("/projects/{project}/join-tokens/{token_id}", tags=["join tokens"])
def revoke_join_token(project: str, token_id: str, ctx: Ctx, _c: Operator) -> JoinTokenOut:
    with ctx.db.session(write=True) as s:
        row = s.get(JoinToken, token_id)
        if row is None or row.project_id != project:
            raise ServerNotFoundError(f"no join token {token_id!r} in project {project!r}", field="token_id")
        row.revoked_at = row.revoked_at or ctx.now()
        return _join_out(row, ctx.now())


def device_out(d: Device, ctx: Any, *, detail: bool = False) -> DeviceOut:
    reported_rev = d.reported.get("revision") if isinstance(d.reported, dict) else None
    return DeviceOut(
        id=d.id,
        project=d.project_id,
        name=d.name,
        labels=d.labels,
        status=device_status(d, ctx.now(), ctx.settings.offline_after_seconds),
        created_at=d.created_at,
        last_seen_at=d.last_seen_at,
        desired_revision=d.desired_revision,
        reported_revision=reported_rev if isinstance(reported_rev, int) else None,
        inventory=d.inventory if detail else None,
        reported=d.reported if detail else None,
        health=d.health if detail else None,
    )


@router.get("/projects/{project}/devices", tags=["devices"])
def list_devices(
    project: str,
    *,
    ctx: Ctx,
    _c: Viewer,
    paging: Paging,
    selector: Annotated[str | None, Query(max_length=4096, description="Label selector.")] = None,
    status: Annotated[str | None, Query(description="new, online, offline or decommissioned.")] = None,
    seen_within_seconds: Annotated[float | None, Query(gt=0, le=10 * 365 * 86400)] = None,
) -> Page[DeviceOut]:
    """Devices of the project, ordered by id; filter by label selector, status and last-seen."""
    sel = Selector.parse(selector)
    if status is not None and status not in DEVICE_STATUSES:
        raise ServerInputError(f"status: one of {', '.join(DEVICE_STATUSES)}", field="status")
    after = decode_cursor(paging.cursor, 1)
    items: list[DeviceOut] = []
    with ctx.db.session() as s:
        get_project(s, project)
        last: str | None = str(after[0]) if after else None
        while len(items) < paging.limit:
            q = select(Device).where(Device.project_id == project).order_by(Device.id).limit(500)
            if last is not None:
                q = q.where(Device.id > last)
            if status == "decommissioned":
                q = q.where(Device.status == "decommissioned")
            elif status is not None:
                q = q.where(Device.status == "active")
            batch = list(s.scalars(q))
            if not batch:
                last = None
                break
            for d in batch:
                last = d.id
                out = device_out(d, ctx)
                if not sel.matches(d.labels) or (status is not None and out.status != status):
                    continue
                if seen_within_seconds is not None and (
                    out.last_seen_at is None
                    or (ctx.now() - _aware(out.last_seen_at)).total_seconds() > seen_within_seconds
                ):
                    continue
                items.append(out)
                if len(items) == paging.limit:
                    break
        more = last is not None and len(items) == paging.limit
    return Page[DeviceOut](items=items, next_cursor=encode_cursor(items[-1].id) if more and items else None)


def _aware(dt: datetime) -> datetime:
    from datetime import UTC

    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@router.get("/projects/{project}/devices/{device_id}", tags=["devices"])
def show_device(project: str, device_id: str, ctx: Ctx, _c: Viewer) -> DeviceOut:
    """One device with its inventory, reported state and health."""
    with ctx.db.session() as s:
        return device_out(get_device(s, project, device_id), ctx, detail=True)


@router.put("/projects/{project}/devices/{device_id}/labels", tags=["devices"])
def put_labels(project: str, device_id: str, body: LabelsIn, ctx: Ctx, _c: Operator) -> DeviceOut:
    """Replace the device's labels; deployments it now matches (or no longer matches) follow."""
    with ctx.db.session(write=True) as s:
        return device_out(relabel(s, ctx, get_device(s, project, device_id), body.labels), ctx, detail=True)


@router.post("/projects/{project}/devices/{device_id}/decommission", tags=["devices"])
def post_decommission(project: str, device_id: str, ctx: Ctx, _c: Operator) -> DeviceOut:
    """Revoke the device's identity at once; its next request is refused."""
    with ctx.db.session(write=True) as s:
        return device_out(decommission(s, ctx, get_device(s, project, device_id)), ctx, detail=True)


@router.get("/projects/{project}/devices/{device_id}/events", tags=["devices"])
def device_events(project: str, device_id: str, ctx: Ctx, _c: Viewer, paging: Paging) -> Page[dict[str, Any]]:
    after = int_cursor(paging.cursor)
    with ctx.db.session() as s:
        get_device(s, project, device_id)
        q = select(DeviceEvent).where(DeviceEvent.device_id == device_id).order_by(DeviceEvent.seq.desc())
        if after is not None:
            q = q.where(DeviceEvent.seq < after)
        rows = list(s.scalars(q.limit(paging.limit)))
        items = [{"seq": e.seq, "kind": e.kind, "data": e.payload, "at": e.created_at} for e in rows]
    nxt = encode_cursor(rows[-1].seq) if len(rows) == paging.limit else None
    return Page[dict[str, Any]](items=items, next_cursor=nxt)


@router.get("/projects/{project}/devices/{device_id}/logs", tags=["devices"])
def device_logs(
    project: str,
    device_id: str,
    *,
    ctx: Ctx,
    _c: Viewer,
    workload: Annotated[str | None, Query(max_length=128, description="Only this workload's lines.")] = None,
    since: Annotated[
        datetime | None, Query(description="Only lines written at or after this time (ISO 8601).")
    ] = None,
    after: Annotated[int | None, Query(ge=0, description="Only lines after this cursor (following).")] = None,
    limit: Annotated[int, Query(ge=1, le=5000, description="At most this many lines.")] = 100,
) -> dict[str, Any]:
    """Log lines the device shipped (its agent's and its workloads'), oldest first.

    Without ``after``: the newest ``limit`` lines. To follow, pass the returned ``cursor`` as
    ``after`` and poll.
    """
    if since is not None and since.tzinfo is None:
        since = _aware(since)
    with ctx.db.session() as s:
        get_device(s, project, device_id)
        rows, cursor = query_logs(s, device_id, workload=workload, since=since, after=after, limit=limit)
        return {"items": [log_out(r) for r in rows], "cursor": cursor}


@router.get("/projects/{project}/audit", tags=["audit"])
def audit_log(project: str, ctx: Ctx, _c: Admin, paging: Paging) -> Page[dict[str, Any]]:
    """Every mutating call in the project, newest first: who, what, when and the answer's status."""
    after = int_cursor(paging.cursor)
    with ctx.db.session() as s:
        q = select(AuditEntry).where(AuditEntry.project_id == project).order_by(AuditEntry.id.desc())
        if after is not None:
            q = q.where(AuditEntry.id < after)
        rows = list(s.scalars(q.limit(paging.limit)))
        items = [
            {
                "id": a.id,
                "at": a.at,
                "actor": a.actor,
                "method": a.method,
                "path": a.path,
                "status": a.status,
                "details": a.details,
            }
            for a in rows
        ]
    nxt = encode_cursor(rows[-1].id) if len(rows) == paging.limit else None
    return Page[dict[str, Any]](items=items, next_cursor=nxt)
