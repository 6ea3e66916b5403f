"""A small synchronous client of the management API, used by the operator CLI.

Error answers (``{"error": {"code", "message", "fields"}}``) come back as the matching
:class:`~edgefleet.errors.EdgefleetError` branch, so the CLI maps them like local errors.
"""

from __future__ import annotations

from typing import Any

import httpx

from edgefleet.errors import (
    ConflictError,
    EdgefleetError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
    UnavailableError,
    VerificationError,
)

__all__ = ["ManagementClient"]

_BY_STATUS: dict[int, type[EdgefleetError]] = {
    400: InvalidInputError,
    401: UnauthenticatedError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: InvalidInputError,
    416: InvalidInputError,
    422: VerificationError,
    503: UnavailableError,
}


class ManagementClient:
    def __init__(
        self,
        server: str,
        token: str | None,
        project: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.project = project
        self.http = httpx.Client(
            base_url=server.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ManagementClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def p(self, path: str) -> str:
        """A path under the current project."""
        return f"/api/v1/projects/{self.project}{path}"

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            r = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise UnavailableError(
                f"cannot reach the server at {self.http.base_url}: {exc}", code="server.unreachable"
            ) from exc
        if r.status_code >= 400:
            try:
                err = r.json()["error"]
                code, message, fields = err["code"], err["message"], err.get("fields", {})
            except (ValueError, KeyError, TypeError):
                code, message, fields = f"http.{r.status_code}", r.text[:200] or r.reason_phrase, {}
            cls = _BY_STATUS.get(r.status_code, EdgefleetError)
            raise cls(message, code=code, **(fields if isinstance(fields, dict) else {}))
        if not r.content:
            return None
        return r.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        if body is not None:
            kwargs["json"] = body
        return self.request("POST", path, **kwargs)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, json=body)

    def paged(self, path: str, limit: int | None = None, **params: Any) -> list[Any]:
        """Every item of a paginated list (or the first ``limit``)."""
        out: list[Any] = []
        cursor: str | None = None
        while True:
            page = self.get(path, cursor=cursor, limit=min(1000, limit or 1000), **params)
            out.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor or (limit is not None and len(out) >= limit):
                return out[:limit] if limit is not None else out
