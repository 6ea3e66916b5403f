"""Devices: enrollment, reports, relabel, decommission, and placing a device in deployments."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edgefleet.server.context import ServerContext
from edgefleet.server.desired import refresh_desired
from edgefleet.server.errors import ForbiddenError, ServerNotFoundError, ServerUnauthenticatedError
from edgefleet.server.ids import new_id
from edgefleet.server.keys import load_public_key
from edgefleet.server.selectors import Selector, validate_labels
from edgefleet.server.store.models import Deployment, Device, DeviceAssignment, DeviceEvent, Rollout
from edgefleet.server.tenancy import consume_join_token

__all__ = [
    "ACTIVE_PHASES",
    "decommission",
    "device_status",
    "enroll",
    "get_device",
    "place_device",
    "record_report",
    "relabel",
]

ACTIVE_PHASES = ("pending", "rolling", "baking", "awaiting_approval", "paused")


def device_status(dev: Device, now: datetime, offline_after: float) -> str:
    """``decommissioned``, ``online`` (seen recently), ``offline`` or ``new`` (never polled)."""
    if dev.status == "decommissioned":
        return "decommissioned"
    if dev.last_seen_at is None:
        return "new"
    seen = dev.last_seen_at if dev.last_seen_at.tzinfo else dev.last_seen_at.replace(tzinfo=now.tzinfo)
    return "online" if now - seen <= timedelta(seconds=offline_after) else "offline"


def get_device(s: Session, project: str | None, device_id: str) -> Device:
    dev = s.get(Device, device_id)
    if dev is None or (project is not None and dev.project_id != project):
        raise ServerNotFoundError(f"no device {device_id!r}", field="device")
    return dev


def enroll(
    s: Session,
    ctx: ServerContext,
    *,
    join_token: str,
    public_key_b64: str,
    name: str | None,
    inventory: dict[str, Any],
    labels: dict[str, str],
) -> Device:
    """A new device from a join token and its public key; labels = the token's plus the device's."""
    now = ctx.now()
    load_public_key(public_key_b64)
    raw = base64.b64decode(public_key_b64)
    token = consume_join_token(s, join_token, now)
    taken = s.execute(select(Device.id).where(Device.public_key == raw)).first()
    if taken is not None:
        raise ForbiddenError(
            "this public key is already enrolled; every device needs its own key",
            code="server.key_in_use",
            field="public_key",
        )
    # ordered by enrollment time: rollout waves take devices in id order, so the first enrolled go first
    device_id = new_id("dev")
    merged = {**token.labels, **validate_labels(labels)}
    dev = Device(
        id=device_id,
        project_id=token.project_id,
        name=name or device_id,
        public_key=raw,
        labels=merged,
        status="active",
        inventory=inventory,
        reported={},
        health={},
        last_seq=0,
        desired_revision=0,
        desired_doc="",
        created_at=now,
    )
    s.add(dev)
    s.flush()
    place_device(s, ctx, dev)
    return dev


def place_device(s: Session, ctx: ServerContext, dev: Device) -> None:
    """Give a device the stable release of every deployment it matches (and none it no longer does).

    Deployments with an active rollout are left to the rollout driver, which adds the device to
    the current wave at its next tick.
    """
    now = ctx.now()
    deployments = s.execute(select(Deployment).where(Deployment.project_id == dev.project_id)).scalars().all()
    rolling = set(
        s.execute(
            select(Rollout.deployment_id).where(
                Rollout.project_id == dev.project_id, Rollout.phase.in_(ACTIVE_PHASES)
            )
        ).scalars()
    )
    current = {
        a.deployment_id: a
        for a in s.execute(select(DeviceAssignment).where(DeviceAssignment.device_id == dev.id)).scalars()
    }
    for dep in deployments:
        if dep.id in rolling:
            continue
        matches = dev.status == "active" and Selector.parse(dep.selector).matches(dev.labels)
        have = current.get(dep.id)
        if matches and dep.stable_release_id and have is None:
            s.add(
                DeviceAssignment(
                    device_id=dev.id, deployment_id=dep.id, release_id=dep.stable_release_id, updated_at=now
                )
            )
        elif not matches and have is not None:
            s.delete(have)
    s.flush()
    changed = refresh_desired(s, ctx.key, [dev.id], now, ctx.settings.desired_state_ttl_seconds)
    ctx.notifier.notify_after_commit(s, changed)


def relabel(s: Session, ctx: ServerContext, dev: Device, labels: dict[str, str]) -> Device:
    dev.labels = validate_labels(labels)
    s.flush()
    place_device(s, ctx, dev)
    return dev


def decommission(s: Session, ctx: ServerContext, dev: Device) -> Device:
    """Revoke the device at once: its signed requests are refused from now on."""
    if dev.status != "decommissioned":
        dev.status = "decommissioned"
        dev.decommissioned_at = ctx.now()
        s.execute(delete(DeviceAssignment).where(DeviceAssignment.device_id == dev.id))
        ctx.notifier.notify_after_commit(s, [dev.id])
    return dev


def authenticated_device(s: Session, device_id: str) -> Device:
    dev = s.get(Device, device_id)
    if dev is None:
        raise ServerUnauthenticatedError(f"unknown device {device_id!r}", code="server.unknown_device")
    if dev.status == "decommissioned":
        raise ForbiddenError(f"device {device_id} is decommissioned", code="server.decommissioned")
    return dev


def record_report(
    s: Session,
    ctx: ServerContext,
    dev: Device,
    *,
    seq: int,
    state: dict[str, Any] | None,
    health: dict[str, Any] | None,
    events: list[dict[str, Any]],
) -> tuple[bool, int]:
    """Apply one report; a sequence number at or below the last one is a duplicate and ignored.

    Returns ``(applied, last_seq)``. Each event gets its own sequence number ``seq``-based, so a
    retried report never stores an event twice.
    """
    if seq <= dev.last_seq:
        return False, dev.last_seq
    now = ctx.now()
    if state is not None:
        dev.reported = state
    if health is not None:
        dev.health = health
    try:
        with s.begin_nested():
            for i, e in enumerate(events):
                s.add(
                    DeviceEvent(
                        device_id=dev.id,
                        seq=seq * 1000 + i,
                        kind=str(e.get("kind", "event"))[:64],
                        payload=e.get("data", {}),
                        created_at=now,
                    )
                )
            s.flush()
    except IntegrityError:  # a concurrent duplicate of the same report
        return False, seq
    dev.last_seq = seq
    dev.last_seen_at = now
    return True, seq


def compact_events(s: Session, now: datetime, retention_days: float, max_per_device: int) -> int:
    """Delete events past the retention time and beyond the newest ``max_per_device`` per device."""
    cutoff = now - timedelta(days=retention_days)
    removed = s.execute(delete(DeviceEvent).where(DeviceEvent.created_at < cutoff)).rowcount or 0  # type: ignore[attr-defined]
    heavy = (
        s.execute(
            select(DeviceEvent.device_id)
            .group_by(DeviceEvent.device_id)
            .having(func.count() > max_per_device)
        )
        .scalars()
        .all()
    )
    for device_id in heavy:
        keep_from = s.execute(
            select(DeviceEvent.seq)
            .where(DeviceEvent.device_id == device_id)
            .order_by(DeviceEvent.seq.desc())
            .offset(max_per_device - 1)
            .limit(1)
        ).scalar_one()
        res = s.execute(
            delete(DeviceEvent).where(DeviceEvent.device_id == device_id, DeviceEvent.seq < keep_from)
        )
        removed += res.rowcount or 0  # type: ignore[attr-defined]
    return removed
