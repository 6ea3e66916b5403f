"""Deployments: a bundle, a device selector, how it runs, and the strategy new releases follow.

Each change of bundle or spec makes a new immutable release and a rollout from the current stable
release to it; a deployment has at most one active rollout at a time.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edgefleet.errors import EdgefleetError
from edgefleet.maintenance import parse_schedule
from edgefleet.server.bundles import find_bundle
from edgefleet.server.context import ServerContext
from edgefleet.server.devices import ACTIVE_PHASES
from edgefleet.server.errors import ServerConflictError, ServerInputError, ServerNotFoundError
from edgefleet.server.ids import new_id
from edgefleet.server.rollout.driver import begin_rollout
from edgefleet.server.rollout.strategy import Strategy
from edgefleet.server.selectors import Selector
from edgefleet.server.store.models import Deployment, Release, Rollout

__all__ = ["BundleRef", "DeploymentSpec", "Resources", "create_or_update", "get_deployment"]


class Resources(BaseModel):
    """Limits for the workload's sandbox on the device."""

    model_config = ConfigDict(extra="forbid")

    cpus: float | None = Field(default=None, gt=0, le=1024, description="CPU time in cores.")
    cpuset: str | None = Field(default=None, pattern=r"^[0-9,\-]{1,256}$", description="e.g. '2-3'.")
    memory: int | None = Field(default=None, gt=0, description="Memory limit in bytes.")
    pids: int | None = Field(default=None, gt=0, le=4_194_304, description="Process limit.")
    accelerators: list[str] = Field(default_factory=list, max_length=16)


class BundleRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    version: str | None = Field(default=None, max_length=64, description="Newest upload when omitted.")


class DeploymentSpec(BaseModel):
    """Everything `edgefleet deploy` sends."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=r"^[a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?$")
    bundle: BundleRef
    selector: str = Field(default="", max_length=4096, description="Label selector; empty matches all.")
    resources: Resources = Field(default_factory=Resources)
    serving: dict[str, Any] = Field(default_factory=dict, description="Serving config (batching, ports).")
    pipeline: dict[str, Any] = Field(default_factory=dict, description="Stream pipeline config.")
    tuning_profile: str | None = Field(default=None, max_length=128)
    maintenance: dict[str, Any] | None = Field(
        default=None,
        description='Maintenance windows: {"windows": ["Mon-Fri 02:00-04:00"], "timezone": "Europe/Berlin"}; '
        "devices defer updates of a running workload to them.",
    )
    strategy: Strategy = Field(default_factory=Strategy)

    @field_validator("maintenance")
    @classmethod
    def _windows(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return None
        try:
            sched = parse_schedule(v, "maintenance")
        except EdgefleetError as exc:
            raise ValueError(exc.message) from exc
        return {"windows": list(sched.source), "timezone": sched.timezone}


def get_deployment(s: Session, project: str, name_or_id: str) -> Deployment:
    row = s.execute(
        select(Deployment).where(
            Deployment.project_id == project, (Deployment.name == name_or_id) | (Deployment.id == name_or_id)
        )
    ).scalar_one_or_none()
    if row is None:
        raise ServerNotFoundError(f"no deployment {name_or_id!r} in project {project!r}", field="deployment")
    return row


def create_or_update(
    s: Session, ctx: ServerContext, project: str, spec: DeploymentSpec
) -> tuple[Deployment, Rollout]:
    """Create the deployment or give it a new release; either way start a rollout to that release."""
    Selector.parse(spec.selector)
    bundle = find_bundle(s, project, spec.bundle.name, spec.bundle.version)
    now = ctx.now()
    dep = s.execute(
        select(Deployment)
        .where(Deployment.project_id == project, Deployment.name == spec.name)
        .with_for_update()
    ).scalar_one_or_none()
    if dep is None:
        dep = Deployment(
            id=new_id("dp"),
            project_id=project,
            name=spec.name,
            selector=spec.selector,
            stable_release_id=None,
            created_at=now,
            updated_at=now,
        )
        s.add(dep)
        s.flush()
    else:
        active = s.execute(
            select(Rollout.id).where(Rollout.deployment_id == dep.id, Rollout.phase.in_(ACTIVE_PHASES))
        ).scalar_one_or_none()
        if active is not None:
            raise ServerConflictError(
                f"deployment {spec.name!r} has an active rollout {active}: wait for it or abort it first",
                code="server.rollout_active",
                rollout=active,
            )
        dep.selector = spec.selector
        dep.updated_at = now
    number = (
        s.execute(select(func.max(Release.number)).where(Release.deployment_id == dep.id)).scalar() or 0
    ) + 1
    spec_json = {
        "resources": spec.resources.model_dump(exclude_none=True),
        "serving": spec.serving,
        "pipeline": spec.pipeline,
        "tuning_profile": spec.tuning_profile,
    }
    if spec.maintenance is not None:
        spec_json["maintenance"] = spec.maintenance
    if dep.stable_release_id is not None:
        stable = s.get(Release, dep.stable_release_id)
        if stable is not None and stable.bundle_id == bundle.id and stable.spec == spec_json:
            raise ServerInputError(
                f"deployment {spec.name!r} already runs {bundle.name} {bundle.version} with this spec",
                code="server.no_change",
                field="bundle",
            )
    rel = Release(
        id=new_id("rel"),
        deployment_id=dep.id,
        number=number,
        bundle_id=bundle.id,
        spec=spec_json,
        created_at=now,
    )
    s.add(rel)
    s.flush()
    rollout = begin_rollout(
        s, ctx, dep, from_release=dep.stable_release_id, to_release=rel.id, strategy=spec.strategy
    )
    return dep, rollout
