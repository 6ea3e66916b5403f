"""An optional seccomp deny-list, loaded through ``pyseccomp`` (ctypes over libseccomp.so.2).

The list blocks what a model-serving workload never needs and what container escapes use: mounts,
namespaces, kernel modules, kexec, reboot, clock setting, BPF, ptrace and keyrings. Denied calls
fail with EPERM. Without pyseccomp (or libseccomp) the sandbox runs without the filter and says so.
"""

from __future__ import annotations

import errno
from typing import Any

__all__ = ["DENIED_SYSCALLS", "load_deny_list", "seccomp_available"]

DENIED_SYSCALLS = (
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "init_module",
    "iopl",
    "ioperm",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "mount",
    "mount_setattr",
    "move_mount",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "syslog",
    "umount2",
    "unshare",
    "userfaultfd",
)


def _module() -> Any:
    try:
        import pyseccomp
    except (ImportError, OSError):
        return None
    return pyseccomp


def seccomp_available() -> str | None:
    """``None`` when the deny-list can be loaded here, else why not."""
    if _module() is None:
        return "pyseccomp (or libseccomp.so.2) is not installed: pip install 'edgefleet[agent]'"
    return None


def load_deny_list(names: tuple[str, ...] = DENIED_SYSCALLS) -> None:
    """Load the filter into the calling process (inherited across fork and exec, never removed).

    Names this architecture does not have (``iopl`` on arm64) are skipped.
    """
    mod = _module()
    if mod is None:
        raise OSError(errno.ENOSYS, seccomp_available())
    flt = mod.SyscallFilter(defaction=mod.ALLOW)
    for name in names:
        try:
            flt.add_rule(mod.ERRNO(errno.EPERM), name)
        except OSError:
            continue
    flt.load()
