"""Projects, API tokens (roles) and join tokens; the first start's administrator token."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgefleet.server.auth import Caller, Role, hash_token, new_token
from edgefleet.server.errors import ServerConflictError, ServerInputError, ServerNotFoundError
from edgefleet.server.selectors import validate_labels
from edgefleet.server.store.models import ApiToken, JoinToken, Project, ServerMeta

__all__ = [
    "PROJECT_ID",
    "authenticate_token",
    "bootstrap",
    "consume_join_token",
    "create_api_token",
    "create_join_token",
    "create_project",
    "get_project",
]

PROJECT_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")
BOOTSTRAP_KEY = "bootstrap_admin_token"
DEFAULT_PROJECT = "default"


def aware(dt: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; every stored time is UTC."""
    if dt is None or dt.tzinfo is not None:
        return dt
    return dt.replace(tzinfo=UTC)


def bootstrap(s: Session, now: datetime) -> str | None:
    """On the first start: the ``default`` project and an admin token, returned once (else None)."""
    if s.get(ServerMeta, BOOTSTRAP_KEY) is not None:
        return None
    if s.get(Project, DEFAULT_PROJECT) is None:
        s.add(Project(id=DEFAULT_PROJECT, description="created on first start", created_at=now))
    tid, token, digest = new_token("efk")
    s.add(
        ApiToken(
            id=tid, project_id=None, name="bootstrap-admin", role="admin", token_hash=digest, created_at=now
        )
    )
    s.add(ServerMeta(key=BOOTSTRAP_KEY, value=tid))
    return token


def create_project(s: Session, project_id: str, description: str, now: datetime) -> Project:
    if not PROJECT_ID.match(project_id):
        raise ServerInputError(
            "id: 1-64 of [a-z0-9-], starting and ending with a letter or digit", field="id"
        )
    if s.get(Project, project_id) is not None:
        raise ServerConflictError(f"project {project_id!r} exists", field="id")
    p = Project(id=project_id, description=description, created_at=now)
    s.add(p)
    return p


def get_project(s: Session, project_id: str) -> Project:
    p = s.get(Project, project_id)
    if p is None:
        raise ServerNotFoundError(f"no project {project_id!r}", field="project")
    return p


def create_api_token(
    s: Session, project: str | None, *, name: str, role: Role, ttl_seconds: float | None, now: datetime
) -> tuple[ApiToken, str]:
    if project is not None:
        get_project(s, project)
    tid, token, digest = new_token("efk")
    expires = now + timedelta(seconds=ttl_seconds) if ttl_seconds else None
    row = ApiToken(
        id=tid,
        project_id=project,
        name=name,
        role=role,
        token_hash=digest,
        created_at=now,
        expires_at=expires,
    )
    s.add(row)
    return row, token


def authenticate_token(s: Session, token: str, now: datetime) -> Caller | None:
    row = s.execute(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    expires = aware(row.expires_at)
    if expires is not None and expires <= now:
        return None
    role: Any = row.role
    return Caller(token_id=row.id, name=row.name, role=role, project=row.project_id)


def create_join_token(
    s: Session,
    project: str,
    *,
    name: str,
    max_uses: int | None,
    ttl_seconds: float | None,
    labels: dict[str, str],
    now: datetime,
) -> tuple[JoinToken, str]:
    get_project(s, project)
    tid, token, digest = new_token("efj")
    row = JoinToken(
        id=tid,
        project_id=project,
        name=name,
        token_hash=digest,
        max_uses=max_uses,
        uses=0,
        labels=validate_labels(labels),
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds) if ttl_seconds else None,
    )
    s.add(row)
    return row, token


def join_token_state(row: JoinToken, now: datetime) -> str:
    if row.revoked_at is not None:
        return "revoked"
    expires = aware(row.expires_at)
    if expires is not None and expires <= now:
        return "expired"
    if row.max_uses is not None and row.uses >= row.max_uses:
        return "used_up"
    return "valid"


def consume_join_token(s: Session, token: str, now: datetime) -> JoinToken:
    """The join token behind ``token`` with one use taken, or 401 naming why it is refused."""
    from edgefleet.server.errors import ServerUnauthenticatedError

    q = select(JoinToken).where(JoinToken.token_hash == hash_token(token)).with_for_update()
    row = s.execute(q).scalar_one_or_none()
    if row is None:
        raise ServerUnauthenticatedError(
            "unknown join token", code="server.bad_join_token", field="join_token"
        )
    state = join_token_state(row, now)
    if state != "valid":
        raise ServerUnauthenticatedError(
            f"join token {row.name!r} is {state.replace('_', ' ')}",
            code="server.bad_join_token",
            field="join_token",
            state=state,
        )
    row.uses += 1
    return row
