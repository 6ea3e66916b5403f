"""The one place where errors become HTTP responses: ``{"error": {"code", "message", "fields"}}``.

- :class:`~edgefleet.errors.EdgefleetError`: its own ``http_status`` and ``to_dict()``.
- Request validation: 400 ``invalid_input`` naming the first bad field (and listing all of them).
- Starlette HTTP errors (404 route, 405 method): their status with ``http.<status>``.
- Anything else: 500 ``internal`` with no traceback in the body (the log has it).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from edgefleet.errors import EdgefleetError, RateLimitedError
from edgefleet.telemetry.logs import get_logger

__all__ = ["ERROR_RESPONSES", "ErrorBody", "install_error_handlers"]

log = get_logger(__name__)


def _body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if fields:
        err["fields"] = fields
    return {"error": err}


ErrorBody = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object"},
            },
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {"application/json": {"schema": ErrorBody}}}
    for status, text in (
        (400, "Bad input; fields name the offending field"),
        (401, "Not authenticated"),
        (403, "Not allowed"),
        (404, "Not found"),
        (409, "Conflicts with the current state"),
        (429, "Too many failed token attempts from this address; see Retry-After"),
    )
}


def _loc(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")] or [str(x) for x in loc]
    return ".".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    async def edgefleet_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, EdgefleetError)  # noqa: S101 - registered for this class only
        if exc.http_status >= 500:
            log.error("request failed", extra={"code": exc.code, "error": exc.message})
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
        if isinstance(exc, RateLimitedError):
            headers = {"Retry-After": str(exc.retry_after)}
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status, headers=headers)

    async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this class only
        errors = list(exc.errors())
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        field = _loc(first.get("loc", ()))
        fields = {
            "field": field,
            "errors": [{"field": _loc(e.get("loc", ())), "message": str(e.get("msg"))} for e in errors[:20]],
        }
        return JSONResponse(
            _body("invalid_input", f"{field or 'request'}: {first.get('msg')}", fields), status_code=400
        )

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for this class only
        return JSONResponse(
            _body(f"http.{exc.status_code}", str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error", exc_info=exc)
        return JSONResponse(_body("internal", "internal server error; see the server log"), status_code=500)

    app.add_exception_handler(EdgefleetError, edgefleet_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
