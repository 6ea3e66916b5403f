"""Request and response bodies of the management and device APIs (published in the OpenAPI)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from edgefleet.server.auth import Role

__all__ = [
    "ApiTokenIn",
    "ApiTokenOut",
    "BundleOut",
    "DeploymentOut",
    "DeviceOut",
    "EnrollIn",
    "EnrollOut",
    "JoinTokenIn",
    "JoinTokenOut",
    "LabelsIn",
    "ProjectIn",
    "ProjectOut",
    "ReasonIn",
    "ReportIn",
    "ReportOut",
]

Labels = dict[str, str]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProjectIn(_In):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")
    description: str = Field(default="", max_length=1024)


class ProjectOut(BaseModel):
    id: str
    description: str
    created_at: datetime


class ApiTokenIn(_In):
    name: str = Field(min_length=1, max_length=128)
    role: Role
    ttl_seconds: float | None = Field(default=None, gt=0, le=10 * 365 * 86400)


class ApiTokenOut(BaseModel):
    id: str
    name: str
    role: str
    project: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked: bool
    token: str | None = Field(default=None, description="The secret; returned once, at creation.")


class JoinTokenIn(_In):
    name: str = Field(min_length=1, max_length=128)
    max_uses: int | None = Field(default=1, ge=1, le=10_000_000, description="null: unlimited.")
    ttl_seconds: float | None = Field(default=86400, gt=0, le=10 * 365 * 86400, description="null: never.")
    labels: Labels = Field(default_factory=dict, description="Given to every device that joins with it.")


class JoinTokenOut(BaseModel):
    id: str
    name: str
    project: str
    max_uses: int | None
    uses: int
    labels: Labels
    created_at: datetime
    expires_at: datetime | None
    state: str
    token: str | None = Field(default=None, description="The secret; returned once, at creation.")


class DeviceOut(BaseModel):
    id: str
    project: str
    name: str
    labels: Labels
    status: str
    created_at: datetime
    last_seen_at: datetime | None
    desired_revision: int
    reported_revision: int | None
    inventory: dict[str, Any] | None = None
    reported: dict[str, Any] | None = None
    health: dict[str, Any] | None = None


class LabelsIn(_In):
    labels: Labels


class BundleOut(BaseModel):
    id: str
    name: str
    version: str
    sha256: str
    size: int
    created_at: datetime
    manifest: dict[str, Any]
    targets: dict[str, Any] | None


class DeploymentOut(BaseModel):
    id: str
    name: str
    selector: str
    stable_release: str | None
    created_at: datetime
    updated_at: datetime
    releases: list[dict[str, Any]] = Field(default_factory=list)
    rollout: dict[str, Any] | None = None


class ReasonIn(_In):
    reason: str | None = Field(default=None, max_length=1024)


class EnrollIn(_In):
    join_token: str = Field(min_length=1, max_length=256)
    public_key: str = Field(min_length=1, max_length=128, description="base64 of the raw ed25519 public key.")
    name: str | None = Field(default=None, min_length=1, max_length=128)
    labels: Labels = Field(default_factory=dict)
    inventory: dict[str, Any] = Field(default_factory=dict, description="The probe JSON.")


class EnrollOut(BaseModel):
    device_id: str
    project: str
    server_public_key: str = Field(description="base64 raw ed25519 key that signs desired state.")
    server_key_id: str
    trust: dict[str, Any]
    poll_interval_seconds: float
    signature_scheme: str


class WorkloadHealth(BaseModel):
    model_config = ConfigDict(extra="allow")

    deployment: str | None = Field(default=None, max_length=128)
    release: str = Field(max_length=64)
    status: Literal["pending", "downloading", "starting", "running", "failed", "rolled_back", "deferred"] = (
        "running"
    )
    ready: bool = False
    crash_loops: int = Field(default=0, ge=0)
    error_rate: float | None = Field(default=None, ge=0, le=1)
    p95_latency_ms: float | None = Field(default=None, ge=0)
    metrics: dict[str, float] = Field(default_factory=dict, max_length=64)


class HealthIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    workloads: list[WorkloadHealth] = Field(default_factory=list, max_length=64)


class EventIn(_In):
    kind: str = Field(min_length=1, max_length=64)
    data: dict[str, Any] = Field(default_factory=dict)


class ReportIn(_In):
    seq: int = Field(ge=1, le=2**53, description="Grows by one or more per report; repeats are ignored.")
    revision: int | None = Field(default=None, ge=0, description="Desired-state revision reached.")
    state: dict[str, Any] | None = None
    health: HealthIn | None = None
    events: list[EventIn] = Field(default_factory=list, max_length=1000)


class ReportOut(BaseModel):
    applied: bool
    last_seq: int
