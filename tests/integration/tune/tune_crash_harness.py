"""Applies a profile to the real kernel and stops dead after the Nth write (the crash test's victim).

Usage: python tune_crash_harness.py STATE_DIR PROFILES_DIR PROFILE N

After write N it prints ``WROTE <key>`` and sleeps, so the test can SIGKILL it between writes.
The pause is a hook passed to this process's Tuner only; edgefleet itself has no such switch.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from edgefleet.tuning import NoTuned, ProfileStore, Step, Tuner


def main() -> None:
    state_dir, profiles_dir, profile, stop_after = sys.argv[1:5]
    count = 0

    def pause(step: Step) -> None:
        nonlocal count
        count += 1
        if count == int(stop_after):
            sys.stdout.write(f"WROTE {step.key}\n")
            sys.stdout.flush()
            time.sleep(120)

    tuner = Tuner(
        state_dir=Path(state_dir),
        store=ProfileStore([Path(profiles_dir)]),
        tuned=NoTuned(),
        after_write=pause,
    )
    tuner.apply(profile)


if __name__ == "__main__":
    main()
