"""The shape of a verified desired-state document, checked before the agent acts on any of it.

The signature says the server wrote it; this says the agent can use it: a document whose fields
have other types (a newer server, a bug) is refused as a whole with ``agent.bad_desired_state``
naming the field, instead of failing half-way through a reconcile with a traceback.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from edgefleet.agent.errors import AgentVerificationError

__all__ = ["check_desired"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _bad(field: str, what: str) -> AgentVerificationError:
    return AgentVerificationError(
        f"desired state: {field} {what}; the document is ignored", code="agent.bad_desired_state", field=field
    )


def _int(value: Any, field: str, *, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise _bad(field, f"must be an integer >= {minimum}")
    return value


def _opt_str(value: Any, field: str) -> None:
    if value is not None and not isinstance(value, str):
        raise _bad(field, "must be a string or null")


def _name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise _bad(field, "must be 1-100 characters of [A-Za-z0-9._-]")
    return value


def _resources(res: Any, field: str) -> None:
    if res is None:
        return
    if not isinstance(res, dict):
        raise _bad(field, "must be an object")
    cpus = res.get("cpus")
    if cpus is not None and (isinstance(cpus, bool) or not isinstance(cpus, int | float) or cpus < 0):
        raise _bad(f"{field}.cpus", "must be a number >= 0")
    mem = res.get("memory")
    if mem is not None and not isinstance(mem, str) and (isinstance(mem, bool) or not isinstance(mem, int)):
        raise _bad(f"{field}.memory", "must be a size string or a number of bytes")
    if res.get("pids") is not None:
        _int(res["pids"], f"{field}.pids")
    _opt_str(res.get("cpuset"), f"{field}.cpuset")


def _workload(w: Any, field: str) -> None:
    if not isinstance(w, dict):
        raise _bad(field, "must be an object")
    _name(w.get("deployment"), f"{field}.deployment")
    _name(w.get("release"), f"{field}.release")
    if w.get("release_number") is not None:
        _int(w["release_number"], f"{field}.release_number")
    b = w.get("bundle")
    if not isinstance(b, dict):
        raise _bad(f"{field}.bundle", "must be an object")
    if not isinstance(b.get("sha256"), str) or not _SHA256.match(b["sha256"]):
        raise _bad(f"{field}.bundle.sha256", "must be 64 lower-case hex digits")
    _int(b.get("size"), f"{field}.bundle.size")
    if not isinstance(b.get("url"), str) or not b["url"].startswith(("/", "http://", "https://")):
        raise _bad(f"{field}.bundle.url", "must be a path or an http(s) URL")
    _opt_str(b.get("name"), f"{field}.bundle.name")
    _opt_str(b.get("version"), f"{field}.bundle.version")
    _resources(w.get("resources"), f"{field}.resources")
    _opt_str(w.get("tuning_profile"), f"{field}.tuning_profile")


def check_desired(signed: Any) -> dict[str, Any]:
    """``signed`` when every field the agent uses has the right type; else ``agent.bad_desired_state``."""
    if not isinstance(signed, dict):
        raise _bad("signed", "must be an object")
    if not isinstance(signed.get("device"), str):
        raise _bad("device", "must be a string")
    _int(signed.get("revision"), "revision")
    expires = signed.get("expires_at")
    if expires is not None:
        if not isinstance(expires, str):
            raise _bad("expires_at", "must be an ISO 8601 time")
        try:
            at = datetime.fromisoformat(expires)
        except ValueError:
            raise _bad("expires_at", "must be an ISO 8601 time") from None
        if at.tzinfo is None:
            raise _bad("expires_at", "must carry a time zone")
    workloads = signed.get("workloads", [])
    if not isinstance(workloads, list):
        raise _bad("workloads", "must be a list")
    seen: set[str] = set()
    for i, w in enumerate(workloads):
        _workload(w, f"workloads[{i}]")
        if w["deployment"] in seen:
            raise _bad(f"workloads[{i}].deployment", "appears twice")
        seen.add(w["deployment"])
    _opt_str(signed.get("tuning_profile"), "tuning_profile")
    return signed
