"""Security features: seccomp, Landlock, no_new_privs, LSMs; Secure Boot, lockdown, TPM and IMA.

Boot-integrity states are reported as seen, never guessed: ``on``/``off`` (or the lockdown mode)
only when the kernel says so; otherwise ``null`` with the reason in ``unknown``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgefleet.probe.model import Section
from edgefleet.probe.paths import ProbePaths
from edgefleet.probe.read import Unknowns, Unreadable, exists, is_dir, list_dir, read_kv, read_text

__all__ = ["SecurityInfo", "collect_security"]

OnOff = Literal["on", "off"]
_EFI_GLOBAL = "8be4df61-93ca-11d2-aa0d-00e098032b8c"


class SecurityInfo(Section):
    """What the kernel offers for sandboxing, and the boot-integrity state."""

    seccomp: bool | None = Field(description="seccomp filters available (CONFIG_SECCOMP_FILTER).")
    seccomp_actions: list[str] | None = Field(description="Filter actions the kernel supports.")
    landlock_abi: int | None = Field(description="Landlock ABI version (0: not available).")
    no_new_privs: bool | None = Field(description="PR_SET_NO_NEW_PRIVS available (Linux >= 3.5).")
    lsms: list[str] | None = Field(description="Active Linux security modules, in order.")
    secure_boot: OnOff | None = Field(description="UEFI Secure Boot state.")
    lockdown: Literal["none", "integrity", "confidentiality"] | None = Field(
        description="Kernel lockdown mode (none means off)."
    )
    tpm: OnOff | None = Field(description="Whether a TPM device is present and bound to a kernel driver.")
    tpm_version: str | None = Field(description="TPM major version: '2' or '1.2'.")
    ima: OnOff | None = Field(description="Whether the integrity measurement architecture is active.")


def _securityfs(paths: ProbePaths) -> str:
    root = paths.sys / "kernel/security"
    if not is_dir(root) or not list_dir(root):
        raise Unreadable(f"{root}: securityfs is not mounted")
    return str(root)


def _seccomp(paths: ProbePaths) -> tuple[bool, list[str]]:
    actions = paths.proc / "sys/kernel/seccomp/actions_avail"
    try:
        return True, read_text(actions).split()
    except Unreadable:
        status = read_kv(paths.proc / "self/status")
        if "Seccomp" not in status:
            return False, []
        # seccomp without the sysctl directory: a kernel older than 4.14; filters still work
        raise


def _landlock(paths: ProbePaths) -> int:
    try:
        return paths.landlock_abi()
    except OSError as exc:
        # ENOSYS: not built in; EOPNOTSUPP: built in but disabled at boot (not in lsm=)
        if exc.errno in {38, 95}:
            return 0
        raise Unreadable(f"landlock_create_ruleset: {exc.strerror or exc}") from exc


def _no_new_privs(paths: ProbePaths) -> bool:
    return "NoNewPrivs" in read_kv(paths.proc / "self/status")


def _lsms(paths: ProbePaths) -> list[str]:
    _securityfs(paths)
    return [s for s in read_text(paths.sys / "kernel/security/lsm").strip().split(",") if s]


def _secure_boot(paths: ProbePaths) -> OnOff:
    efi = paths.sys / "firmware/efi"
    if not is_dir(efi):
        raise Unreadable(
            f"{efi}: not present (not booted through UEFI); a board's own verified boot is not visible here"
        )
    var = efi / "efivars" / f"SecureBoot-{_EFI_GLOBAL}"
    try:
        data = var.read_bytes()
    except OSError as exc:
        raise Unreadable(f"{var}: {exc.strerror or exc}") from exc
    if len(data) < 5:
        raise Unreadable(f"{var}: {len(data)} bytes, expected 4 attribute bytes and a value")
    return "on" if data[4] == 1 else "off"


def _lockdown(paths: ProbePaths) -> Literal["none", "integrity", "confidentiality"]:
    _securityfs(paths)
    path = paths.sys / "kernel/security/lockdown"
    text = read_text(path)
    for mode in ("none", "integrity", "confidentiality"):
        if f"[{mode}]" in text:
            return mode
    raise Unreadable(f"{path}: no [selected] mode in {text.strip()!r}")


def _tpm(paths: ProbePaths) -> tuple[OnOff, str | None]:
    cls = paths.sys / "class/tpm"
    if not is_dir(cls):
        raise Unreadable(f"{cls}: not present (kernel without TPM support; a chip would not be usable)")
    devices = [d for d in list_dir(cls) if d.startswith("tpm")]
    if not devices:
        return "off", None
    major = cls / devices[0] / "tpm_version_major"
    version: str | None
    try:
        version = read_text(major).strip()
    except Unreadable:
        version = "2" if exists(paths.dev / f"tpmrm{devices[0][3:]}") else None
    return "on", ("1.2" if version == "1" else version)


def _ima(paths: ProbePaths) -> OnOff:
    _securityfs(paths)
    return "on" if is_dir(paths.sys / "kernel/security/ima") else "off"


def collect_security(paths: ProbePaths) -> SecurityInfo:
    """Read the security section."""
    unknown = Unknowns()
    seccomp = unknown.attempt("seccomp", lambda: _seccomp(paths))
    if seccomp is None:
        unknown["seccomp_actions"] = unknown["seccomp"]
    tpm = unknown.attempt("tpm", lambda: _tpm(paths))
    if tpm is None:
        unknown["tpm_version"] = unknown["tpm"]
    elif tpm[0] == "on" and tpm[1] is None:
        unknown["tpm_version"] = "the TPM's sysfs entry has no tpm_version_major"
    return SecurityInfo(
        seccomp=seccomp[0] if seccomp else None,
        seccomp_actions=seccomp[1] if seccomp else None,
        landlock_abi=unknown.attempt("landlock_abi", lambda: _landlock(paths)),
        no_new_privs=unknown.attempt("no_new_privs", lambda: _no_new_privs(paths)),
        lsms=unknown.attempt("lsms", lambda: _lsms(paths)),
        secure_boot=unknown.attempt("secure_boot", lambda: _secure_boot(paths)),
        lockdown=unknown.attempt("lockdown", lambda: _lockdown(paths)),
        tpm=tpm[0] if tpm else None,
        tpm_version=tpm[1] if tpm else None,
        ima=unknown.attempt("ima", lambda: _ima(paths)),
        unknown=dict(unknown),
    )
