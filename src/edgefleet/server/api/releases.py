"""Management API, release side: bundles and blobs, deployments, rollouts and their transitions."""

from __future__ import annotations

import json
from typing import Annotated, Any, BinaryIO, Literal

from fastapi import APIRouter, Depends, File, Form, Header, Query, UploadFile
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from edgefleet.errors import PayloadTooLargeError
from edgefleet.server.api.blob_http import blob_response
from edgefleet.server.api.deps import Ctx, Page, Paging, decode_cursor, encode_cursor, role
from edgefleet.server.api.errors import ERROR_RESPONSES
from edgefleet.server.api.schemas import BundleOut, DeploymentOut, ReasonIn
from edgefleet.server.auth import Caller
from edgefleet.server.bundles import store_bundle
from edgefleet.server.deployments import DeploymentSpec, create_or_update, get_deployment
from edgefleet.server.errors import ServerInputError, ServerNotFoundError
from edgefleet.server.ids import new_id
from edgefleet.server.rollout import engine as eng
from edgefleet.server.rollout.driver import apply_manual, rollout_view
from edgefleet.server.store.models import Blob, Bundle, Deployment, Release, Rollout, RolloutTransitionRow
from edgefleet.server.tenancy import get_project

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)
Viewer = Annotated[Caller, Depends(role("viewer"))]
Operator = Annotated[Caller, Depends(role("operator"))]


def _bundle_out(b: Bundle) -> BundleOut:
    return BundleOut(
        id=b.id,
        name=b.name,
        version=b.version,
        sha256=b.blob_sha256,
        size=b.size,
        created_at=b.created_at,
        manifest=b.manifest,
        targets=b.targets,
    )


class _Limited:
    """A reader that refuses to go past ``limit`` bytes."""

    def __init__(self, inner: BinaryIO, limit: int) -> None:
        self.inner, self.limit, self.read_bytes = inner, limit, 0

    def read(self, n: int = -1) -> bytes:
        chunk = self.inner.read(n)
        self.read_bytes += len(chunk)
        if self.read_bytes > self.limit:
            raise PayloadTooLargeError(f"the upload is larger than {self.limit} bytes", field="file")
        return chunk


@router.post("/projects/{project}/bundles", status_code=201, tags=["bundles"])
def upload_bundle(
    project: str,
    ctx: Ctx,
    _c: Operator,
    file: Annotated[UploadFile, File(description="The bundle tar (gzip allowed) with bundle.json.")],
    targets: Annotated[str | None, Form(max_length=4 * 1024 * 1024, description="TUF targets JSON.")] = None,
) -> BundleOut:
    """Upload a bundle; stored content-addressed. The same name and version twice must be identical."""
    meta: dict[str, Any] | None = None
    if targets:
        try:
            parsed = json.loads(targets)
        except ValueError as exc:
            raise ServerInputError(f"targets: not JSON: {exc}", field="targets") from exc
        if not isinstance(parsed, dict):
            raise ServerInputError("targets: must be a JSON object", field="targets")
        meta = parsed
    with ctx.db.session(write=True) as s:
        get_project(s, project)
        source: Any = _Limited(file.file, ctx.settings.max_upload_bytes)
        row = store_bundle(
            s,
            ctx.blobs,
            ctx.trust,
            project=project,
            source=source,
            targets=meta,
            new_id=new_id("bn"),
            now=ctx.now(),
        )
        return _bundle_out(row)


@router.get("/projects/{project}/bundles", tags=["bundles"])
def list_bundles(
    project: str,
    ctx: Ctx,
    _c: Viewer,
    paging: Paging,
    name: Annotated[str | None, Query(max_length=128)] = None,
) -> Page[BundleOut]:
    """Bundles by name then newest first; ``name`` lists the versions of one bundle."""
    after = decode_cursor(paging.cursor, 1)
    with ctx.db.session() as s:
        get_project(s, project)
        q = select(Bundle).where(Bundle.project_id == project).order_by(Bundle.id)
        if name is not None:
            q = q.where(Bundle.name == name)
        if after:
            q = q.where(Bundle.id > str(after[0]))
        rows = list(s.scalars(q.limit(paging.limit)))
    nxt = encode_cursor(rows[-1].id) if len(rows) == paging.limit else None
    return Page[BundleOut](items=[_bundle_out(b) for b in rows], next_cursor=nxt)


@router.get("/projects/{project}/bundles/{name}/versions", tags=["bundles"])
def bundle_versions(project: str, name: str, ctx: Ctx, _c: Viewer) -> list[BundleOut]:
    with ctx.db.session() as s:
        rows = list(
            s.scalars(
                select(Bundle)
                .where(Bundle.project_id == project, Bundle.name == name)
                .order_by(Bundle.created_at)
            )
        )
    if not rows:
        raise ServerNotFoundError(f"no bundle {name!r} in project {project!r}", field="name")
    return [_bundle_out(b) for b in rows]


@router.get("/projects/{project}/blobs/{sha256}", tags=["bundles"], response_class=StreamingResponse)
def get_blob(
    project: str,
    sha256: str,
    ctx: Ctx,
    _c: Viewer,
    range_: Annotated[str | None, Header(alias="Range")] = None,
) -> StreamingResponse:
    """A blob by its sha256, whole or one byte range."""
    with ctx.db.session() as s:
        used = s.execute(
            select(Bundle.id).where(Bundle.project_id == project, Bundle.blob_sha256 == sha256).limit(1)
        ).first()
        if used is None or s.get(Blob, sha256) is None:
            raise ServerNotFoundError(f"no blob {sha256} in project {project!r}", field="sha256")
    return blob_response(ctx.blobs, sha256, range_)


def _deployment_out(s: Any, d: Deployment, *, detail: bool = False) -> DeploymentOut:
    out = DeploymentOut(
        id=d.id,
        name=d.name,
        selector=d.selector,
        stable_release=d.stable_release_id,
        created_at=d.created_at,
        updated_at=d.updated_at,
    )
    if detail:
        rels = s.execute(
            select(Release, Bundle)
            .join(Bundle, Bundle.id == Release.bundle_id)
            .where(Release.deployment_id == d.id)
            .order_by(Release.number)
        ).all()
        out.releases = [
            {
                "id": r.id,
                "number": r.number,
                "bundle": {"name": b.name, "version": b.version},
                "spec": r.spec,
                "created_at": r.created_at.isoformat(),
            }
            for r, b in rels
        ]
    latest = s.execute(
        select(Rollout).where(Rollout.deployment_id == d.id).order_by(Rollout.id.desc()).limit(1)
    ).scalar_one_or_none()
    if latest is not None:
        out.rollout = json.loads(json.dumps(rollout_view(latest), default=str))
    return out


@router.post("/projects/{project}/deployments", status_code=201, tags=["deployments"])
def deploy(project: str, body: DeploymentSpec, ctx: Ctx, _c: Operator) -> DeploymentOut:
    """Create a deployment, or give an existing one a new release; either way a rollout starts."""
    with ctx.db.session(write=True) as s:
        get_project(s, project)
        dep, _rollout = create_or_update(s, ctx, project, body)
        return _deployment_out(s, dep, detail=True)


@router.get("/projects/{project}/deployments", tags=["deployments"])
def list_deployments(project: str, ctx: Ctx, _c: Viewer) -> list[DeploymentOut]:
    with ctx.db.session() as s:
        get_project(s, project)
        rows = s.scalars(select(Deployment).where(Deployment.project_id == project).order_by(Deployment.name))
        return [_deployment_out(s, d) for d in rows]


@router.get("/projects/{project}/deployments/{name}", tags=["deployments"])
def show_deployment(project: str, name: str, ctx: Ctx, _c: Viewer) -> DeploymentOut:
    with ctx.db.session() as s:
        return _deployment_out(s, get_deployment(s, project, name), detail=True)


@router.get("/projects/{project}/rollouts", tags=["rollouts"])
def list_rollouts(
    project: str,
    ctx: Ctx,
    _c: Viewer,
    paging: Paging,
    deployment: Annotated[str | None, Query(max_length=128)] = None,
    phase: Annotated[str | None, Query(max_length=32)] = None,
) -> Page[dict[str, Any]]:
    """Rollouts, newest first; filter by deployment (name or id) and phase."""
    if phase is not None and phase not in {p.value for p in eng.Phase}:
        raise ServerInputError(f"phase: one of {', '.join(p.value for p in eng.Phase)}", field="phase")
    after = decode_cursor(paging.cursor, 1)
    with ctx.db.session() as s:
        get_project(s, project)
        q = select(Rollout).where(Rollout.project_id == project).order_by(Rollout.id.desc())
        if deployment is not None:
            q = q.where(Rollout.deployment_id == get_deployment(s, project, deployment).id)
        if phase is not None:
            q = q.where(Rollout.phase == phase)
        if after:
            q = q.where(Rollout.id < str(after[0]))
        rows = list(s.scalars(q.limit(paging.limit)))
        items = [json.loads(json.dumps(rollout_view(r), default=str)) for r in rows]
    nxt = encode_cursor(rows[-1].id) if len(rows) == paging.limit else None
    return Page[dict[str, Any]](items=items, next_cursor=nxt)


@router.get("/projects/{project}/rollouts/{rollout_id}", tags=["rollouts"])
def show_rollout(project: str, rollout_id: str, ctx: Ctx, _c: Viewer) -> dict[str, Any]:
    """A rollout with every transition and its reason."""
    with ctx.db.session() as s:
        row = s.get(Rollout, rollout_id)
        if row is None or row.project_id != project:
            raise ServerNotFoundError(f"no rollout {rollout_id!r}", field="rollout_id")
        trans = list(
            s.scalars(
                select(RolloutTransitionRow)
                .where(RolloutTransitionRow.rollout_id == row.id)
                .order_by(RolloutTransitionRow.id)
            )
        )
        view: dict[str, Any] = json.loads(json.dumps(rollout_view(row, trans), default=str))
        return view


_EVENTS: dict[str, type[eng.Pause | eng.Resume | eng.Approve | eng.Abort]] = {
    "pause": eng.Pause,
    "resume": eng.Resume,
    "approve": eng.Approve,
    "abort": eng.Abort,
}


@router.post("/projects/{project}/rollouts/{rollout_id}/{action}", tags=["rollouts"])
def rollout_action(
    project: str,
    *,
    rollout_id: str,
    action: Literal["pause", "resume", "approve", "abort"],
    ctx: Ctx,
    caller: Operator,
    body: ReasonIn | None = None,
) -> dict[str, Any]:
    """Pause, resume, approve the next wave, or abort (which rolls the updated devices back)."""
    reason = (body.reason if body and body.reason else None) or f"{action} by {caller.name}"
    event = _EVENTS[action](now=ctx.clock(), reason=reason)
    with ctx.db.session(write=True) as s:
        row = apply_manual(s, ctx, rollout_id, project, event)
        view: dict[str, Any] = json.loads(json.dumps(rollout_view(row), default=str))
        return view
