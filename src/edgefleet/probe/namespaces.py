"""Namespaces: which kinds the kernel offers and how many of each may be created."""

from __future__ import annotations

from pydantic import Field

from edgefleet.probe.model import Section
from edgefleet.probe.paths import ProbePaths
from edgefleet.probe.read import Unknowns, Unreadable, exists, list_dir, read_int

__all__ = ["NamespacesInfo", "collect_namespaces"]

KINDS = ("cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts")


class NamespacesInfo(Section):
    """Namespace kinds and limits."""

    available: list[str] | None = Field(
        description="Namespace kinds the kernel offers (entries of /proc/self/ns): cgroup, ipc, mnt, net, "
        "pid, time, user, uts."
    )
    limits: dict[str, int] | None = Field(
        description="Kind → max_<kind>_namespaces (0: creating one is disabled)."
    )
    unprivileged_user: bool | None = Field(
        description="Whether an unprivileged process may create a user namespace "
        "(max_user_namespaces > 0 and, where the sysctl exists, unprivileged_userns_clone = 1)."
    )


def _limits(paths: ProbePaths) -> dict[str, int]:
    out: dict[str, int] = {}
    base = paths.proc / "sys/user"
    for kind in KINDS:
        path = base / f"max_{kind}_namespaces"
        if exists(path):
            out[kind] = read_int(path)
    if not out:
        raise Unreadable(f"{base}: no max_*_namespaces files")
    return out


def _unprivileged_user(paths: ProbePaths, limits: dict[str, int]) -> bool:
    if limits.get("user", 0) == 0:
        return False
    clone = paths.proc / "sys/kernel/unprivileged_userns_clone"  # Debian's switch
    if exists(clone) and read_int(clone) != 1:
        return False
    # Ubuntu's AppArmor switch
    restrict = paths.proc / "sys/kernel/apparmor_restrict_unprivileged_userns"
    return not (exists(restrict) and read_int(restrict) == 1)


def collect_namespaces(paths: ProbePaths) -> NamespacesInfo:
    """Read the namespaces section from ``/proc/self/ns`` and ``/proc/sys/user``."""
    unknown = Unknowns()
    entries = unknown.attempt("available", lambda: list_dir(paths.proc / "self/ns"))
    limits = unknown.attempt("limits", lambda: _limits(paths))
    unprivileged = None
    if limits is None:
        unknown["unprivileged_user"] = unknown["limits"]
    else:
        unprivileged = unknown.attempt("unprivileged_user", lambda: _unprivileged_user(paths, limits))
    return NamespacesInfo(
        available=[k for k in KINDS if k in entries] if entries is not None else None,
        limits=limits,
        unprivileged_user=unprivileged,
        unknown=dict(unknown),
    )
