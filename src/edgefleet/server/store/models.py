"""The control plane's tables (SQLAlchemy 2.0). The schema changes only through Alembic migrations.

Tenancy: devices, join tokens, bundles, deployments and rollouts belong to one project; API tokens
are scoped to one project, or to none for the server's administrators.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Base",
    "Blob",
    "Bundle",
    "Deployment",
    "Device",
    "DeviceAssignment",
    "DeviceEvent",
    "DeviceLog",
    "JoinToken",
    "Project",
    "Release",
    "Rollout",
    "RolloutTransitionRow",
    "ServerMeta",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Json = JSON()


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        del dialect
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


Ts = UtcDateTime()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ServerMeta(Base):
    """Key/value facts about this server (the bootstrap marker, the server key id)."""

    __tablename__ = "server_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(Ts)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(Ts)
    expires_at: Mapped[datetime | None] = mapped_column(Ts)
    revoked_at: Mapped[datetime | None] = mapped_column(Ts)


class JoinToken(Base):
    __tablename__ = "join_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    max_uses: Mapped[int | None] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    labels: Mapped[dict[str, str]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(Ts)
    expires_at: Mapped[datetime | None] = mapped_column(Ts)
    revoked_at: Mapped[datetime | None] = mapped_column(Ts)


class Device(Base):
    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    labels: Mapped[dict[str, str]] = mapped_column(Json, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)
    inventory: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    reported: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    health: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    log_batch: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    desired_revision: Mapped[int] = mapped_column(BigInteger, default=0)
    desired_doc: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(Ts)
    last_seen_at: Mapped[datetime | None] = mapped_column(Ts, index=True)
    decommissioned_at: Mapped[datetime | None] = mapped_column(Ts)


class DeviceEvent(Base):
    """What devices report, ordered per device by their sequence number; old rows are compacted."""

    __tablename__ = "device_events"
    __table_args__ = (UniqueConstraint("device_id", "seq"), Index("ix_device_events_created", "created_at"))
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(Ts)


class DeviceLog(Base):
    """One log line a device shipped (its agent's or a workload's), kept within the retention limits."""

    __tablename__ = "device_logs"
    __table_args__ = (
        Index("ix_device_logs_device_id_id", "device_id", "id"),
        Index("ix_device_logs_device_id_ts", "device_id", "ts"),
        Index("ix_device_logs_received_at", "received_at"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    ts: Mapped[datetime] = mapped_column(Ts)
    received_at: Mapped[datetime] = mapped_column(Ts)
    source: Mapped[str] = mapped_column(String(16))
    workload: Mapped[str | None] = mapped_column(String(128))
    level: Mapped[str | None] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)


class Blob(Base):
    __tablename__ = "blobs"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(Ts)


class Bundle(Base):
    __tablename__ = "bundles"
    __table_args__ = (UniqueConstraint("project_id", "name", "version"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    size: Mapped[int] = mapped_column(BigInteger)
    manifest: Mapped[dict[str, Any]] = mapped_column(Json)
    targets: Mapped[dict[str, Any] | None] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(Ts)


class Deployment(Base):
    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    selector: Mapped[str] = mapped_column(Text, default="")
    stable_release_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(Ts)
    updated_at: Mapped[datetime] = mapped_column(Ts)


class Release(Base):
    """One immutable spec of a deployment: a bundle and how it runs."""

    __tablename__ = "releases"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    bundle_id: Mapped[str] = mapped_column(ForeignKey("bundles.id"))
    spec: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(Ts)


class DeviceAssignment(Base):
    """Which release of a deployment a device should run."""

    __tablename__ = "device_assignments"
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"))
    updated_at: Mapped[datetime] = mapped_column(Ts)


class Rollout(Base):
    __tablename__ = "rollouts"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"), index=True)
    from_release_id: Mapped[str | None] = mapped_column(ForeignKey("releases.id"))
    to_release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"))
    phase: Mapped[str] = mapped_column(String(32), index=True)
    state: Mapped[dict[str, Any]] = mapped_column(Json)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(Ts)
    created_at: Mapped[datetime] = mapped_column(Ts)
    updated_at: Mapped[datetime] = mapped_column(Ts)


class RolloutTransitionRow(Base):
    __tablename__ = "rollout_transitions"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    rollout_id: Mapped[str] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(Ts)
    from_phase: Mapped[str] = mapped_column(String(32))
    to_phase: Mapped[str] = mapped_column(String(32))
    wave: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(Ts, index=True)
    project_id: Mapped[str | None] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(160))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(Text)
    status: Mapped[int] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
