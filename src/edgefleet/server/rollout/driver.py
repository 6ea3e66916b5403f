"""Runs rollouts: feeds the pure engine with what the database says and applies what it decides.

One replica drives each rollout: a lease (``lease_owner``, ``lease_until`` on the rollout row) is
taken with one conditional UPDATE, renewed every tick and lost when the replica stops renewing it.
All state lives in the row (the engine state as JSON), so any replica, or the same one after a
restart, resumes exactly where the rollout was.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from edgefleet.server.context import ServerContext
from edgefleet.server.desired import refresh_desired
from edgefleet.server.errors import RolloutStateError, ServerNotFoundError
from edgefleet.server.ids import new_id
from edgefleet.server.rollout import engine as eng
from edgefleet.server.rollout.strategy import Strategy
from edgefleet.server.selectors import Selector
from edgefleet.server.store.models import Deployment, Device, DeviceAssignment, Rollout, RolloutTransitionRow
from edgefleet.telemetry.logs import get_logger

__all__ = ["RolloutDriver", "apply_manual", "begin_rollout", "health_of"]

log = get_logger(__name__)
ACTIVE = ("pending", "rolling", "baking", "awaiting_approval", "paused")


def _matching(s: Session, dep: Deployment) -> list[str]:
    sel = Selector.parse(dep.selector)
    rows = s.execute(
        select(Device.id, Device.labels).where(Device.project_id == dep.project_id, Device.status == "active")
    ).all()
    return [d for d, labels in rows if sel.matches(labels)]


def begin_rollout(
    s: Session,
    ctx: ServerContext,
    dep: Deployment,
    *,
    from_release: str | None,
    to_release: str,
    strategy: Strategy,
) -> Rollout:
    """Create and start a rollout of ``to_release`` over the deployment's matching devices."""
    now = ctx.now()
    row = Rollout(
        id=new_id("ro"),
        project_id=dep.project_id,
        deployment_id=dep.id,
        from_release_id=from_release,
        to_release_id=to_release,
        phase=eng.Phase.PENDING.value,
        state=eng.RolloutState(strategy=strategy).to_json(),
        created_at=now,
        updated_at=now,
    )
    s.add(row)
    s.flush()
    result = eng.start(strategy, _matching(s, dep), ctx.clock())
    _apply(s, ctx, row, dep, result)
    return row


def apply_manual(s: Session, ctx: ServerContext, rollout_id: str, project: str, event: eng.Event) -> Rollout:
    """Apply an operator's pause/resume/abort/approve; 409 naming the phase when it is not allowed."""
    row = s.execute(select(Rollout).where(Rollout.id == rollout_id).with_for_update()).scalar_one_or_none()
    if row is None or row.project_id != project:
        raise ServerNotFoundError(f"no rollout {rollout_id!r}", field="rollout")
    dep = s.get(Deployment, row.deployment_id)
    if dep is None:  # cascades make this unreachable; kept for type narrowing
        raise ServerNotFoundError(f"no deployment for rollout {rollout_id!r}", field="rollout")
    result = eng.step(eng.RolloutState.from_json(row.state), event)
    if result.rejected:
        raise RolloutStateError(result.rejected, field="action", phase=row.phase)
    _apply(s, ctx, row, dep, result)
    return row


def health_of(device_health: dict[str, Any], release: str) -> eng.Health | None:
    """What a device reported about ``release`` (None when it has not reported on it yet)."""
    for w in device_health.get("workloads", []) or []:
        if not isinstance(w, dict) or w.get("release") != release:
            continue
        metrics = w.get("metrics") or {}
        return eng.Health(
            ready=bool(w.get("ready", False)),
            # a device that rolled the release back (health window, crash loop) failed it too
            failed=w.get("status") in {"failed", "rolled_back"} or bool(w.get("failed", False)),
            crash_loops=int(w.get("crash_loops", 0) or 0),
            error_rate=_num(w.get("error_rate")),
            p95_latency_ms=_num(w.get("p95_latency_ms")),
            metrics=tuple(sorted((str(k), float(v)) for k, v in metrics.items() if _num(v) is not None)),
        )
    return None


def _num(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _apply(s: Session, ctx: ServerContext, row: Rollout, dep: Deployment, result: eng.Result) -> None:
    now = ctx.now()
    state = result.state
    new_json = state.to_json()
    if new_json != row.state:
        row.state = new_json
    row.phase = state.phase.value
    row.updated_at = now
    for t in result.transitions:
        s.add(
            RolloutTransitionRow(
                rollout_id=row.id,
                at=now,
                from_phase=t.from_phase.value,
                to_phase=t.to_phase.value,
                wave=t.wave,
                reason=t.reason,
            )
        )
        log.info(
            "rollout transition",
            extra={"rollout": row.id, "from": t.from_phase.value, "to": t.to_phase.value, "reason": t.reason},
        )
    touched = _assign(s, dep.id, row, result.actions, now)
    if state.phase is eng.Phase.COMPLETED:
        dep.stable_release_id = row.to_release_id
    elif state.phase is eng.Phase.ABORTED:
        dep.stable_release_id = row.from_release_id
    if state.phase.terminal:
        row.lease_owner = None
        row.lease_until = None
    s.flush()
    changed = refresh_desired(s, ctx.key, touched, now, ctx.settings.desired_state_ttl_seconds)
    ctx.notifier.notify_after_commit(s, changed)


def _assign(s: Session, deployment: str, row: Rollout, actions: Iterable[eng.Assign], now: Any) -> list[str]:
    targets = {a.device: (row.to_release_id if a.target == "to" else row.from_release_id) for a in actions}
    if not targets:
        return []
    ids = list(targets)
    existing: dict[str, DeviceAssignment] = {}
    for i in range(0, len(ids), 500):
        q = select(DeviceAssignment).where(
            DeviceAssignment.deployment_id == deployment, DeviceAssignment.device_id.in_(ids[i : i + 500])
        )
        existing.update({a.device_id: a for a in s.execute(q).scalars()})
    gone: list[str] = []
    for device, release in targets.items():
        have = existing.get(device)
        if release is None:
            if have is not None:
                gone.append(device)
        elif have is None:
            s.add(
                DeviceAssignment(
                    device_id=device, deployment_id=deployment, release_id=release, updated_at=now
                )
            )
        else:
            have.release_id = release
            have.updated_at = now
    for i in range(0, len(gone), 500):
        s.execute(
            delete(DeviceAssignment).where(
                DeviceAssignment.deployment_id == deployment,
                DeviceAssignment.device_id.in_(gone[i : i + 500]),
            )
        )
    return ids


class RolloutDriver:
    """Drives every active rollout this replica holds the lease for; call :meth:`tick` periodically."""

    def __init__(self, ctx: ServerContext, replica_id: str | None = None) -> None:
        self.ctx = ctx
        self.replica = replica_id or ctx.settings.replica_id or "replica-" + secrets.token_hex(4)

    def claim(self) -> list[str]:
        """Take or renew the lease of every active rollout that is free, expired or already ours."""
        now = self.ctx.now()
        until = now + timedelta(seconds=self.ctx.settings.lease_seconds)
        mine: list[str] = []
        with self.ctx.db.session(write=True) as s:
            ids = s.execute(select(Rollout.id).where(Rollout.phase.in_(ACTIVE))).scalars().all()
            for rid in ids:
                res = s.execute(
                    update(Rollout)
                    .where(
                        Rollout.id == rid,
                        Rollout.phase.in_(ACTIVE),
                        or_(
                            Rollout.lease_owner.is_(None),
                            Rollout.lease_owner == self.replica,
                            Rollout.lease_until < now,
                        ),
                    )
                    .values(lease_owner=self.replica, lease_until=until)
                    .execution_options(synchronize_session=False)
                )
                if res.rowcount == 1:  # type: ignore[attr-defined]
                    mine.append(rid)
        return mine

    def release(self) -> None:
        """Give up every lease held (a clean shutdown lets another replica take over at once)."""
        with self.ctx.db.session(write=True) as s:
            s.execute(
                update(Rollout)
                .where(Rollout.lease_owner == self.replica)
                .values(lease_owner=None, lease_until=None)
                .execution_options(synchronize_session=False)
            )

    def tick(self) -> int:
        """One pass: claim leases, then feed each held rollout its events. Returns rollouts driven."""
        mine = self.claim()
        for rid in mine:
            self._drive(rid)
        return len(mine)

    def _drive(self, rollout_id: str) -> None:
        """Read the fleet without the write lock, decide, then apply unless the rollout moved meanwhile."""
        with self.ctx.db.session() as s:
            row = s.get(Rollout, rollout_id)
            if row is None or row.phase not in ACTIVE or row.lease_owner != self.replica:
                return
            dep = s.get(Deployment, row.deployment_id)
            if dep is None:
                return
            before = row.state
            result, left = self._observe(s, row, dep)
        state = result.state
        if not result.transitions and not result.actions and not left and state.to_json() == before:
            return
        with self.ctx.db.session(write=True) as s:
            row = s.execute(
                select(Rollout).where(Rollout.id == rollout_id).with_for_update()
            ).scalar_one_or_none()
            dep = s.get(Deployment, row.deployment_id) if row is not None else None
            if row is None or dep is None or row.state != before or row.lease_owner != self.replica:
                return  # an operator action or another pass changed it: the next pass starts from there
            if left:  # devices that left the selector lose this deployment
                for i in range(0, len(left), 500):
                    s.execute(
                        delete(DeviceAssignment).where(
                            DeviceAssignment.deployment_id == dep.id,
                            DeviceAssignment.device_id.in_(left[i : i + 500]),
                        )
                    )
            _apply(s, self.ctx, row, dep, result)
            if left:
                changed = refresh_desired(
                    s, self.ctx.key, left, self.ctx.now(), self.ctx.settings.desired_state_ttl_seconds
                )
                self.ctx.notifier.notify_after_commit(s, changed)

    def _observe(self, s: Session, row: Rollout, dep: Deployment) -> tuple[eng.Result, list[str]]:
        now = self.ctx.clock()
        state = eng.RolloutState.from_json(row.state)
        sel = Selector.parse(dep.selector)
        devices = s.execute(
            select(Device.id, Device.labels, Device.health, Device.status).where(
                Device.project_id == dep.project_id
            )
        ).all()
        joined: list[str] = []
        healths: list[tuple[str, eng.Health]] = []
        present: set[str] = set()
        for device_id, labels, health, status in devices:
            if status != "active" or not sel.matches(labels):
                continue
            present.add(device_id)
            member = state.members.get(device_id)
            if member is None:
                joined.append(device_id)
            elif member.target == "to":
                h = health_of(health or {}, row.to_release_id)
                if h is not None and h != member.health:
                    healths.append((device_id, h))
        left = sorted(set(state.members) - present)
        return eng.step(state, eng.Observed(now, tuple(joined), tuple(left), tuple(healths))), left


def rollout_view(row: Rollout, transitions: list[RolloutTransitionRow] | None = None) -> dict[str, Any]:
    """The API's picture of a rollout: phase, wave, counts, reason, and the transitions when given."""
    state = eng.RolloutState.from_json(row.state)
    out: dict[str, Any] = {
        "id": row.id,
        "deployment_id": row.deployment_id,
        "from_release": row.from_release_id,
        "to_release": row.to_release_id,
        "phase": state.phase.value,
        "wave": state.wave + 1,
        "waves": len(state.plan),
        "plan": list(state.plan),
        "reason": state.reason,
        "counts": state.counts(),
        "strategy": json.loads(state.strategy.model_dump_json()),
        "lease_owner": row.lease_owner,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }
    if transitions is not None:
        out["transitions"] = [
            {"at": t.at, "from": t.from_phase, "to": t.to_phase, "wave": t.wave + 1, "reason": t.reason}
            for t in transitions
        ]
    return out
