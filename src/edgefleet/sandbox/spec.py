"""What to run and how to isolate it: :class:`Isolation` and :class:`SandboxSpec`."""

from __future__ import annotations

import os
import pwd
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from edgefleet.errors import InvalidInputError
from edgefleet.sandbox.errors import SandboxNotFoundError
from edgefleet.sandbox.limits import Limits

__all__ = ["Isolation", "SandboxSpec", "UserId", "resolve_user"]

Network = Literal["none", "host"]
_HOSTNAME = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,62})$")
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class UserId:
    """A resolved user: uid, primary gid and the name (for reports)."""

    uid: int
    gid: int
    name: str


def resolve_user(text: str, passwd: Path = Path("/etc/passwd")) -> UserId:
    """``nobody``, ``1000`` or ``1000:1000`` → :class:`UserId`; names must exist in ``passwd``."""
    uid_part, _, gid_part = text.partition(":")
    if uid_part.isdigit():
        uid = int(uid_part)
        gid = int(gid_part) if gid_part.isdigit() else uid
        return UserId(uid, gid, text)
    if gid_part and not gid_part.isdigit():
        raise InvalidInputError(f"user: gid {gid_part!r} must be a number", field="user", value=text)
    if passwd == Path("/etc/passwd"):
        try:
            entry = pwd.getpwnam(uid_part)
        except KeyError:
            raise SandboxNotFoundError(
                f"user: {uid_part!r} does not exist (use a name from /etc/passwd or a numeric uid[:gid])",
                field="user",
                value=text,
            ) from None
        return UserId(entry.pw_uid, int(gid_part) if gid_part else entry.pw_gid, uid_part)
    for line in passwd.read_text().splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == uid_part:
            return UserId(int(fields[2]), int(gid_part) if gid_part else int(fields[3]), uid_part)
    raise SandboxNotFoundError(f"user: {uid_part!r} does not exist in {passwd}", field="user", value=text)


@dataclass(frozen=True)
class Isolation:
    """Namespaces, file system view and privileges of a sandbox.

    The whole file system is read-only inside; ``rw`` directories (the state directory) stay
    writable, ``ro`` directories (the bundle) are bound read-only, /tmp is a private tmpfs, /dev holds
    only the standard nodes plus the allowed devices, /proc is fresh for the new PID namespace.
    """

    hostname: str = "edgefleet"
    network: Network = "host"
    user: UserId = field(default_factory=lambda: UserId(65534, 65534, "nobody"))
    ro: tuple[Path, ...] = ()
    rw: tuple[Path, ...] = ()
    workdir: Path = Path("/")
    seccomp: bool = True
    tmp_size: int = 64 << 20

    def __post_init__(self) -> None:
        if not _HOSTNAME.match(self.hostname):
            raise InvalidInputError(
                f"hostname: {self.hostname!r} must be 1-63 letters, digits or '-'", field="hostname"
            )
        if self.network not in {"none", "host"}:
            raise InvalidInputError(f"network: {self.network!r}; allowed none, host", field="network")
        for kind, dirs in (("ro", self.ro), ("rw", self.rw)):
            for d in dirs:
                if not d.is_absolute() or not d.is_dir():
                    raise SandboxNotFoundError(
                        f"{kind}: {d} is not an existing directory (give an absolute path)",
                        field=kind,
                        value=str(d),
                    )


@dataclass(frozen=True)
class SandboxSpec:
    """One command to run: its name (unique per host), argv, environment, limits and isolation."""

    name: str
    argv: tuple[str, ...]
    limits: Limits = field(default_factory=Limits)
    isolation: Isolation = field(default_factory=Isolation)
    env: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise InvalidInputError(
                f"name: {self.name!r} must be letters, digits, '_', '.', '-' (up to 100)", field="name"
            )
        if not self.argv:
            raise InvalidInputError("command: nothing to run; give it after --", field="command")

    def environment(self) -> dict[str, str]:
        """The workload's environment: the given one, or a minimal one (PATH, LANG, HOME=/tmp)."""
        if self.env is not None:
            return dict(self.env)
        base = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "HOME": "/tmp"}  # noqa: S108 - the private tmpfs
        for key in ("LANG", "LC_ALL", "TZ"):
            if key in os.environ:
                base[key] = os.environ[key]
        base["HOSTNAME"] = self.isolation.hostname
        return base
