"""The few system calls the sandbox needs that Python 3.11's ``os`` lacks, through ctypes on libc.

unshare(2), mount(2), mount_setattr(2), sethostname(2), prctl(2) (no_new_privs, the capability
bounding set) and bringing the loopback interface up with ``SIOCSIFFLAGS``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import socket
import struct
from pathlib import Path

__all__ = [
    "CLONE_NEWIPC",
    "CLONE_NEWNET",
    "CLONE_NEWNS",
    "CLONE_NEWPID",
    "CLONE_NEWUTS",
    "MS_BIND",
    "MS_MOVE",
    "MS_NODEV",
    "MS_NOEXEC",
    "MS_NOSUID",
    "MS_PRIVATE",
    "MS_RDONLY",
    "MS_REC",
    "MS_REMOUNT",
    "drop_bounding_set",
    "loopback_up",
    "make_writable",
    "mount",
    "remount_tree_readonly",
    "set_no_new_privs",
    "sethostname",
    "unshare",
]

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18

PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
SYS_MOUNT_SETATTR = 442  # the same number on every architecture (added in 5.12)
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces (``CLONE_NEW*`` flags)."""
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """mount(2) with byte-encoded strings."""
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


class _MountAttr(ctypes.Structure):
    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


def _mount_setattr(path: str, recursive: bool, set_ro: bool) -> None:
    attr = _MountAttr(MOUNT_ATTR_RDONLY if set_ro else 0, 0 if set_ro else MOUNT_ATTR_RDONLY, 0, 0)
    result = _libc.syscall(
        ctypes.c_long(SYS_MOUNT_SETATTR),
        ctypes.c_int(AT_FDCWD),
        path.encode(),
        ctypes.c_uint(AT_RECURSIVE if recursive else 0),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    _check(int(result), f"mount_setattr {path}")


def remount_tree_readonly(path: str = "/", mountinfo: Path = Path("/proc/self/mountinfo")) -> None:
    """Make every mount at or below ``path`` read-only (mount_setattr, or one remount per mount)."""
    try:
        _mount_setattr(path, recursive=True, set_ro=True)
    except OSError as exc:
        if exc.errno not in {38, 22}:  # ENOSYS (before 5.12), EINVAL
            raise
    else:
        return
    prefix = path.rstrip("/") + "/"
    for line in mountinfo.read_text().splitlines():
        fields = line.split()
        target = fields[4].replace("\\040", " ")
        if target != path and not target.startswith(prefix):
            continue
        opts = set(fields[5].split(","))
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        flags |= (MS_NOSUID if "nosuid" in opts else 0) | (MS_NODEV if "nodev" in opts else 0)
        flags |= MS_NOEXEC if "noexec" in opts else 0
        try:
            mount(None, target, None, flags)
        except OSError:
            continue  # a mount hidden under another one cannot be reached by path: it is covered


def make_writable(path: str) -> None:
    """Clear the read-only flag of the single mount at ``path`` (a bind mount made for it)."""
    try:
        _mount_setattr(path, recursive=False, set_ro=False)
    except OSError as exc:
        if exc.errno not in {38, 22}:
            raise
        mount(None, path, None, MS_REMOUNT | MS_BIND)


def sethostname(name: str) -> None:
    """Set the hostname of the current UTS namespace."""
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")


def _prctl(option: int, arg: int) -> None:
    _check(
        _libc.prctl(
            ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)
        ),
        f"prctl {option}",
    )


def set_no_new_privs() -> None:
    """PR_SET_NO_NEW_PRIVS: execve can never grant privileges again (setuid bits, file caps)."""
    _prctl(PR_SET_NO_NEW_PRIVS, 1)


def drop_bounding_set(cap_last_cap: Path = Path("/proc/sys/kernel/cap_last_cap")) -> None:
    """Drop every capability from the bounding set (needs CAP_SETPCAP, so call it before setuid)."""
    try:
        last = int(cap_last_cap.read_text())
    except (OSError, ValueError):
        last = 40
    for cap in range(last + 1):
        _prctl(PR_CAPBSET_DROP, cap)


def loopback_up() -> None:
    """Bring ``lo`` up in the current network namespace (a new one starts with it down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifreq = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP, b""))
