"""Every management endpoint, role and project: only the allowed calls get past authorization.

The endpoints come from the app's own routes, so an endpoint added without a row in ``MATRIX``
fails ``test_every_management_endpoint_is_in_the_matrix``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.security.conftest import PROJECTS, ROLES, SecServer, record

pytestmark = pytest.mark.integration

ANY = "any"  # any valid token
SERVER_ADMIN = "server-admin"  # an administrator token that is not scoped to one project

# (method, path template) -> the role it needs in the path's project (or ANY / SERVER_ADMIN)
MATRIX: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/whoami"): ANY,
    ("GET", "/api/v1/projects"): ANY,
    ("POST", "/api/v1/projects"): SERVER_ADMIN,
    ("GET", "/api/v1/projects/{project}/tokens"): "admin",
    ("POST", "/api/v1/projects/{project}/tokens"): "admin",
    ("DELETE", "/api/v1/projects/{project}/tokens/{token_id}"): "admin",
    ("GET", "/api/v1/projects/{project}/join-tokens"): "operator",
    ("POST", "/api/v1/projects/{project}/join-tokens"): "operator",
    ("DELETE", "/api/v1/projects/{project}/join-tokens/{token_id}"): "operator",
    ("GET", "/api/v1/projects/{project}/devices"): "viewer",
    ("GET", "/api/v1/projects/{project}/devices/{device_id}"): "viewer",
    ("PUT", "/api/v1/projects/{project}/devices/{device_id}/labels"): "operator",
    ("POST", "/api/v1/projects/{project}/devices/{device_id}/decommission"): "operator",
    ("GET", "/api/v1/projects/{project}/devices/{device_id}/events"): "viewer",
    ("GET", "/api/v1/projects/{project}/devices/{device_id}/logs"): "viewer",
    ("GET", "/api/v1/projects/{project}/audit"): "admin",
    ("POST", "/api/v1/projects/{project}/bundles"): "operator",
    ("GET", "/api/v1/projects/{project}/bundles"): "viewer",
    ("GET", "/api/v1/projects/{project}/bundles/{name}/versions"): "viewer",
    ("GET", "/api/v1/projects/{project}/blobs/{sha256}"): "viewer",
    ("POST", "/api/v1/projects/{project}/deployments"): "operator",
    ("GET", "/api/v1/projects/{project}/deployments"): "viewer",
    ("GET", "/api/v1/projects/{project}/deployments/{name}"): "viewer",
    ("GET", "/api/v1/projects/{project}/rollouts"): "viewer",
    ("GET", "/api/v1/projects/{project}/rollouts/{rollout_id}"): "viewer",
    ("POST", "/api/v1/projects/{project}/rollouts/{rollout_id}/{action}"): "operator",
    ("GET", "/api/v1/projects/{project}/rollouts/{rollout_id}/gates"): "viewer",
    ("GET", "/api/v1/projects/{project}/fleet-summary"): "viewer",
}

# bodies that pass validation, so an allowed call reaches the handler (a 404 on a made-up id is fine)
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/projects"): {"json": {"id": "p-new"}},
    ("POST", "/api/v1/projects/{project}/tokens"): {"json": {"name": "n", "role": "viewer"}},
    ("POST", "/api/v1/projects/{project}/join-tokens"): {"json": {"name": "n"}},
    ("PUT", "/api/v1/projects/{project}/devices/{device_id}/labels"): {"json": {"labels": {"a": "b"}}},
    ("POST", "/api/v1/projects/{project}/deployments"): {
        "json": {"name": "d", "bundle": {"name": "nope", "version": "1.0.0"}, "selector": ""}
    },
}
FILL = {
    "token_id": "tok_0000",
    "device_id": "dev_0000000000000000",
    "name": "nope",
    "sha256": "0" * 64,
    "rollout_id": "ro_0000",
    "action": "pause",
}


def _management_routes(app: Any) -> set[tuple[str, str]]:
    """Every ``/api/`` operation of the app's OpenAPI document (each management endpoint is in it)."""
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    return {(m.upper(), p) for p, ops in paths.items() if p.startswith("/api/") for m in ops}


def _allowed(needed: str, token_project: str | None, token_role: str, path_project: str | None) -> bool:
    if needed == ANY:
        return True
    if needed == SERVER_ADMIN:
        return token_project is None and token_role == "admin"  # noqa: S105 - a role name
    if ROLES.index(token_role) < ROLES.index(needed):
        return False
    return token_project is None or token_project == path_project


def test_every_management_endpoint_is_in_the_matrix(sec_server: SecServer) -> None:
    routes = _management_routes(sec_server.app)
    assert routes - set(MATRIX) == set(), "new endpoints need a row in MATRIX"
    assert set(MATRIX) - routes == set(), "MATRIX names endpoints that are gone"


def test_authorization_matrix(sec_server: SecServer) -> None:
    """Each endpoint, for the server admin and each role of each project, on both projects."""
    callers: list[tuple[str | None, str, str]] = [(None, "admin", sec_server.admin)]
    callers += [(p, role, sec_server.tokens[(p, role)]) for p in PROJECTS for role in ROLES]
    wrong: list[str] = []
    counts = {"allowed_ok": 0, "denied_ok": 0, "unauthenticated_ok": 0, "wrong": 0}
    for (method, template), needed in sorted(MATRIX.items()):
        for path_project in PROJECTS if "{project}" in template else (None,):
            path = template.format(project=path_project, **FILL)
            body = BODIES.get((method, template), {})
            r = sec_server.call(method, path, None, **body)
            if r.status_code == 401:
                counts["unauthenticated_ok"] += 1
            else:
                wrong.append(f"{method} {path} without a token: {r.status_code}")
            for token_project, role, token in callers:
                r = sec_server.call(method, path, token, **body)
                allowed = _allowed(needed, token_project, role, path_project)
                who = f"{role}@{token_project or '*'}"
                if r.status_code >= 500:
                    wrong.append(f"{method} {path} as {who}: {r.status_code} {r.text[:200]}")
                elif allowed and r.status_code in (401, 403):
                    wrong.append(f"{method} {path} as {who}: refused {r.status_code}, should be allowed")
                elif not allowed and r.status_code != 403:
                    wrong.append(f"{method} {path} as {who}: {r.status_code}, should be 403")
                elif not allowed:
                    assert r.json()["error"]["code"] == "server.forbidden", r.text
                    counts["denied_ok"] += 1
                else:
                    counts["allowed_ok"] += 1
    counts["wrong"] = len(wrong)
    record(
        "authz-matrix",
        trials=sum(counts.values()),
        outcomes=counts,
        notes=f"{len(MATRIX)} management endpoints x 7 tokens x 2 projects, plus no token",
    )
    assert not wrong, "\n".join(wrong)


def test_another_projects_objects_are_not_reachable_through_ones_own_project(sec_server: SecServer) -> None:
    """Ids of the other project, used under one's own project path, are 404 (never the object)."""
    dev = sec_server.enroll("other")
    bundle = sec_server.upload("other", "secret-model", "1.0.0")
    r = sec_server.call(
        "POST", "/api/v1/projects/other/tokens", sec_server.admin, json={"name": "x", "role": "viewer"}
    )
    other_token = r.json()["id"]
    own_admin = sec_server.tokens[("default", "admin")]
    probes = [
        ("GET", f"/api/v1/projects/default/devices/{dev.id}"),
        ("GET", f"/api/v1/projects/default/devices/{dev.id}/events"),
        ("PUT", f"/api/v1/projects/default/devices/{dev.id}/labels"),
        ("POST", f"/api/v1/projects/default/devices/{dev.id}/decommission"),
        ("GET", f"/api/v1/projects/default/blobs/{bundle['sha256']}"),
        ("GET", "/api/v1/projects/default/bundles/secret-model/versions"),
        ("DELETE", f"/api/v1/projects/default/tokens/{other_token}"),
    ]
    for token in (own_admin, sec_server.admin):
        for method, path in probes:
            kw: dict[str, Any] = {"json": {"labels": {"a": "b"}}} if method == "PUT" else {}
            r = sec_server.call(method, path, token, **kw)
            assert r.status_code == 404, (method, path, r.status_code, r.text)
    listed = sec_server.call("GET", "/api/v1/projects/default/devices", own_admin).json()
    assert dev.id not in str(listed)
    # still intact in its own project
    still = sec_server.call("GET", f"/api/v1/projects/other/devices/{dev.id}", sec_server.admin).json()
    assert still["status"] != "decommissioned"
    assert "a" not in still["labels"]
    r = sec_server.call("GET", "/api/v1/projects", sec_server.tokens[("default", "viewer")])
    assert [p["id"] for p in r.json()] == ["default"]
