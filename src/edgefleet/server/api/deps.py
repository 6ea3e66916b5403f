"""Request-scoped helpers: the server context, the calling token, its role in the project."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from edgefleet.server.auth import Caller, Role
from edgefleet.server.context import ServerContext
from edgefleet.server.errors import ServerInputError, ServerUnauthenticatedError
from edgefleet.server.tenancy import authenticate_token

__all__ = [
    "Page",
    "PageParams",
    "context",
    "current_caller",
    "decode_cursor",
    "encode_cursor",
    "role",
    "source_address",
]

T = TypeVar("T")


def context(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ServerContext, Depends(context)]


def source_address(request: Request) -> str:
    """The peer address token guesses are counted against (a proxy's X-Forwarded-For is not trusted)."""
    return request.client.host if request.client else "unknown"


def current_caller(request: Request, ctx: Ctx) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ServerUnauthenticatedError("send 'Authorization: Bearer <api token>'", field="Authorization")
    source = source_address(request)
    ctx.guesses.check(source, "api_token")
    with ctx.db.session() as s:
        caller = authenticate_token(s, token.strip(), ctx.now())
    if caller is None:
        ctx.guesses.failed(source, "api_token")
        raise ServerUnauthenticatedError(
            "the API token is unknown, expired or revoked", field="Authorization"
        )
    request.state.actor = caller.actor
    request.state.project = caller.project
    return caller


def role(needed: Role) -> Callable[..., Caller]:
    """A dependency: the caller, refused unless it has ``needed`` in the path's ``project``."""

    def check(request: Request, caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
        project = request.path_params.get("project")
        caller.require(needed, project)
        if project is not None:
            request.state.project = project
        return caller

    return check


class PageParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=100, ge=1, le=1000, description="Items per page.")
    cursor: str | None = Field(default=None, max_length=512, description="next_cursor of the previous page.")


def page_params(
    limit: Annotated[int, Query(ge=1, le=1000, description="Items per page.")] = 100,
    cursor: Annotated[
        str | None, Query(max_length=512, description="next_cursor of the previous page.")
    ] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


Paging = Annotated[PageParams, Depends(page_params)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(*values: Any) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else v for v in values]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, n: int) -> list[Any] | None:
    if cursor is None:
        return None
    bad = ServerInputError("cursor: not a cursor this API returned", field="cursor")
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError as exc:
        raise bad from exc
    if not isinstance(values, list) or len(values) != n or not all(isinstance(v, str | int) for v in values):
        raise bad
    return values


def int_cursor(cursor: str | None) -> int | None:
    """A cursor that holds one integer (event sequence, audit id)."""
    values = decode_cursor(cursor, 1)
    if values is None:
        return None
    if not isinstance(values[0], int) or isinstance(values[0], bool):
        raise ServerInputError("cursor: not a cursor this API returned", field="cursor")
    return values[0]
