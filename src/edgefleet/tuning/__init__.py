"""Kernel and OS tuning: knobs (read → plan → apply → verify → rollback), profiles, journal, tuned interop.

The device agent calls :func:`recover` at start-up, then :meth:`Tuner.apply` with the desired
profile and keeps the :class:`LatencyHold` s from :meth:`Tuner.hold` open while it is active.
"""

from __future__ import annotations

from pathlib import Path

from edgefleet.config import Settings
from edgefleet.tuning.engine import ApplyReport, Plan, RecoveryReport, RevertReport, Status, Tuner
from edgefleet.tuning.knob import Check, Knob, Setting, Step
from edgefleet.tuning.knobs import LatencyHold
from edgefleet.tuning.profile import Profile, ProfileStore
from edgefleet.tuning.roots import Roots
from edgefleet.tuning.tuned import NoTuned, SystemTunedDetector, TunedDetector

__all__ = [
    "SYSTEM_PROFILE_DIR",
    "ApplyReport",
    "Check",
    "Knob",
    "LatencyHold",
    "NoTuned",
    "Plan",
    "Profile",
    "ProfileStore",
    "RecoveryReport",
    "RevertReport",
    "Roots",
    "Setting",
    "Status",
    "Step",
    "SystemTunedDetector",
    "TunedDetector",
    "Tuner",
    "default_profile_dirs",
    "default_state_dir",
    "recover",
]

SYSTEM_PROFILE_DIR = Path("/etc/edgefleet/tune")


def default_state_dir(settings: Settings) -> Path:
    """Where the journal lives: ``<data_dir>/tune``."""
    return settings.data_dir / "tune"


def default_profile_dirs(settings: Settings) -> list[Path]:
    """User profile directories, searched in order before the built-ins."""
    return [settings.data_dir / "tune" / "profiles", SYSTEM_PROFILE_DIR]


def recover(state_dir: Path, *, roots: Roots | None = None) -> RecoveryReport | None:
    """Undo an apply or revert that a crash interrupted: write every journaled original back.

    Returns what was done, or None when there was nothing to recover. A profile that was fully
    applied stays applied.
    """
    return Tuner(state_dir=state_dir, store=ProfileStore(), roots=roots, tuned=NoTuned()).recover()
