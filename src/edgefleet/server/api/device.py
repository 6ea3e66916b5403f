"""Device API ``/device/v1``: enroll, long-poll the signed desired state, report, logs, fetch blobs,
the CA devices pin, and the project's TUF repository (``/tuf/metadata/<file>``,
``/tuf/targets/<sha256>.<target>``).

Every call but ``enroll`` is a signed request (:mod:`edgefleet.server.auth`); a decommissioned
device gets 403 ``server.decommissioned`` on its next call.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from edgefleet.server.api.blob_http import blob_response
from edgefleet.server.api.deps import Ctx, source_address
from edgefleet.server.api.errors import ERROR_RESPONSES
from edgefleet.server.api.schemas import EnrollIn, EnrollOut, ReportIn, ReportOut
from edgefleet.server.auth import verify_request
from edgefleet.server.context import ServerContext
from edgefleet.server.desired import etag, expiring, renew_desired
from edgefleet.server.devices import authenticated_device, enroll, record_report
from edgefleet.server.errors import ForbiddenError, ServerNotFoundError, ServerUnauthenticatedError
from edgefleet.server.logs import parse_batch, store_batch
from edgefleet.server.store.models import Bundle, Device
from edgefleet.server.tuf import TufTrustStore

__all__ = ["router"]

router = APIRouter(prefix="/device/v1", tags=["device"], responses=ERROR_RESPONSES)
POLL_INTERVAL_SECONDS = 60.0


def _target(request: Request) -> str:
    q = request.url.query
    return request.url.path + (f"?{q}" if q else "")


def _authenticate(ctx: ServerContext, request: Request, body: bytes) -> tuple[str, str, int, str]:
    """Verify the signature; returns ``(device id, project, desired revision, desired document)``."""
    found: dict[str, Any] = {}

    def key_for(device_id: str) -> bytes:
        with ctx.db.session() as s:
            row = s.execute(
                select(
                    Device.public_key,
                    Device.status,
                    Device.project_id,
                    Device.desired_revision,
                    Device.desired_doc,
                ).where(Device.id == device_id)
            ).first()
        if row is None:
            raise ServerUnauthenticatedError(f"unknown device {device_id!r}", code="server.unknown_device")
        found.update(row._mapping)
        return bytes(row.public_key)

    device = verify_request(
        request.headers,
        request.method,
        _target(request),
        body,
        public_key_for=key_for,
        nonces=ctx.nonces,
        now=ctx.clock(),
    )
    if found["status"] == "decommissioned":
        raise ForbiddenError(f"device {device} is decommissioned", code="server.decommissioned")
    ctx.last_seen.mark(device, ctx.clock())
    return device, found["project_id"], found["desired_revision"], found["desired_doc"]


@router.post("/enroll", status_code=201)
def post_enroll(body: EnrollIn, request: Request, ctx: Ctx) -> EnrollOut:
    """Join the fleet with a join token and the device's own ed25519 public key."""
    source = source_address(request)
    ctx.guesses.check(source, "join_token")
    try:
        with ctx.db.session(write=True) as s:
            dev = enroll(
                s,
                ctx,
                join_token=body.join_token,
                public_key_b64=body.public_key,
                name=body.name,
                inventory=body.inventory,
                labels=body.labels,
            )
            project = dev.project_id
            device_id = dev.id
    except ServerUnauthenticatedError as exc:
        if exc.code == "server.bad_join_token":
            ctx.guesses.failed(source, "join_token")
        raise
    return EnrollOut(
        device_id=device_id,
        project=project,
        server_public_key=ctx.key.public_b64,
        server_key_id=ctx.key.keyid,
        trust=ctx.trust.trust_material(project),
        poll_interval_seconds=POLL_INTERVAL_SECONDS,
        signature_scheme="edgefleet-device-v1",
    )


@router.get("/ca.pem", response_class=Response, responses={200: {"content": {"application/x-pem-file": {}}}})
def ca_certificate(ctx: Ctx) -> Response:
    """The CA certificate devices pin (public; a device checks its fingerprint before trusting it)."""
    path = ctx.settings.tls_ca_file
    if path is None:
        raise ServerNotFoundError(
            "this server publishes no CA certificate (plain HTTP, or an operator certificate "
            "without --tls-ca): give the agent --ca-file",
            code="server.no_ca",
        )
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ServerNotFoundError(f"the CA certificate {path} cannot be read", code="server.no_ca") from exc
    return Response(pem, media_type="application/x-pem-file", headers={"Cache-Control": "no-store"})


def _doc(ctx: ServerContext, device: str) -> tuple[int, str]:
    with ctx.db.session() as s:
        row = s.execute(
            select(Device.desired_revision, Device.desired_doc, Device.status).where(Device.id == device)
        ).first()
    if row is None or row.status == "decommissioned":
        raise ForbiddenError(f"device {device} is decommissioned", code="server.decommissioned")
    return row.desired_revision, row.desired_doc


def _renew(ctx: ServerContext, device: str) -> tuple[int, str]:
    with ctx.db.session(write=True) as s:
        renew_desired(s, ctx.key, device, ctx.now(), ctx.settings.desired_state_ttl_seconds)
    return _doc(ctx, device)


@router.get(
    "/desired-state",
    responses={200: {"description": "The signed document"}, 304: {"description": "Unchanged (ETag)"}},
)
async def desired_state(
    request: Request,
    ctx: Ctx,
    wait: Annotated[float, Query(ge=0, le=600, description="Seconds to wait for a change.")] = 0,
    if_none_match: Annotated[str | None, Header(alias="If-None-Match", max_length=256)] = None,
) -> Response:
    """The device's signed desired state; with ``If-None-Match`` and ``wait``, a long-poll (304 if none)."""
    device, _project, revision, doc = await anyio.to_thread.run_sync(_authenticate, ctx, request, b"")
    if doc and expiring(doc, ctx.now(), ctx.settings.desired_state_ttl_seconds):
        revision, doc = await anyio.to_thread.run_sync(_renew, ctx, device)
    deadline = time.monotonic() + min(wait, ctx.settings.max_poll_wait_seconds)
    while True:
        tag = etag(device, revision)
        if not doc:
            doc = '{"signed": null, "signatures": []}'
        if if_none_match is None or if_none_match.strip() != tag:
            return Response(
                doc, media_type="application/json", headers={"ETag": tag, "Cache-Control": "no-store"}
            )
        left = deadline - time.monotonic()
        if left <= 0:
            return Response(status_code=304, headers={"ETag": tag})
        await ctx.notifier.wait(device, min(left, ctx.settings.poll_recheck_seconds))
        revision, doc = await anyio.to_thread.run_sync(_doc, ctx, device)


@router.post("/report")
async def report(request: Request, body: ReportIn, ctx: Ctx) -> ReportOut:
    """State, health and events; a repeated ``seq`` is acknowledged and ignored (idempotent)."""
    raw = await request.body()

    def work() -> ReportOut:
        device, *_ = _authenticate(ctx, request, raw)
        with ctx.db.session(write=True) as s:
            dev = authenticated_device(s, device)
            state = dict(body.state or {})
            if body.revision is not None:
                state["revision"] = body.revision
            health = body.health.model_dump(mode="json") if body.health is not None else None
            applied, last = record_report(
                s,
                ctx,
                dev,
                seq=body.seq,
                state=state if (body.state is not None or body.revision is not None) else None,
                health=health,
                events=[e.model_dump(mode="json") for e in body.events],
            )
        return ReportOut(applied=applied, last_seq=last)

    return await anyio.to_thread.run_sync(work)


@router.post("/logs")
async def logs(
    request: Request,
    ctx: Ctx,
    batch: Annotated[int, Query(ge=1, le=2**62, description="The device's batch number (increasing).")],
) -> dict[str, Any]:
    """A gzip JSON-lines batch of log lines; a batch number already stored is acknowledged and ignored."""
    raw = await request.body()

    def work() -> dict[str, Any]:
        device, *_ = _authenticate(ctx, request, raw)
        lines = parse_batch(raw, max_bytes=ctx.settings.max_log_batch_bytes)
        with ctx.db.session(write=True) as s:
            dev = authenticated_device(s, device)
            stored = store_batch(
                s,
                dev,
                batch,
                lines,
                now=ctx.now(),
                retention_days=ctx.settings.log_retention_days,
                max_per_device=ctx.settings.max_log_lines_per_device,
            )
        return {"stored": stored, "lines": len(lines) if stored else 0, "batch": batch}

    return await anyio.to_thread.run_sync(work)


@router.get("/blobs/{sha256}", response_class=StreamingResponse)
def device_blob(
    sha256: str,
    request: Request,
    ctx: Ctx,
    range_: Annotated[str | None, Header(alias="Range")] = None,
) -> StreamingResponse:
    """A bundle blob of the device's project, whole or one byte range (resumable downloads)."""
    _device, project, _rev, _doc = _authenticate(ctx, request, b"")
    with ctx.db.session() as s:
        used = s.execute(
            select(Bundle.id).where(Bundle.project_id == project, Bundle.blob_sha256 == sha256).limit(1)
        ).first()
    if used is None:
        raise ServerNotFoundError(f"no blob {sha256}", field="sha256")
    return blob_response(ctx.blobs, sha256, range_)


def _tuf(ctx: ServerContext) -> TufTrustStore:
    if not isinstance(ctx.trust, TufTrustStore):
        raise ServerNotFoundError(
            "this server hosts no TUF repository (start it with --tuf-keys)", code="server.no_tuf"
        )
    return ctx.trust


@router.get("/tuf/metadata/{name}")
def tuf_metadata(name: str, request: Request, ctx: Ctx) -> Response:
    """TUF metadata of the device's project: root, N.root, timestamp, N.snapshot, N.targets."""
    _device, project, _rev, _doc = _authenticate(ctx, request, b"")
    data = _tuf(ctx).metadata(project, name)
    return Response(data, media_type="application/json", headers={"Cache-Control": "no-store"})


@router.get("/tuf/targets/{name}", response_class=StreamingResponse)
def tuf_target(
    name: str,
    request: Request,
    ctx: Ctx,
    range_: Annotated[str | None, Header(alias="Range")] = None,
) -> StreamingResponse:
    """A TUF target (``<sha256>.<name>-<version>.tar``): the bundle blob of that sha256."""
    _device, project, _rev, _doc = _authenticate(ctx, request, b"")
    sha256 = _tuf(ctx).target_sha256(name)
    with ctx.db.session() as s:
        used = s.execute(
            select(Bundle.id).where(Bundle.project_id == project, Bundle.blob_sha256 == sha256).limit(1)
        ).first()
    if used is None:
        raise ServerNotFoundError(f"no TUF target {name!r}", field="name")
    return blob_response(ctx.blobs, sha256, range_)
