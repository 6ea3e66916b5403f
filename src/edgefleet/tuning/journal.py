"""The journal of originals: written (temp file, fsync, rename, fsync dir) before the first write.

It holds, for every file edgefleet has changed, the exact text to write back, and a ``state``:

- ``applying``: writes may be half done. Recovery writes every original back.
- ``applied``: the profile is in force; ``revert`` writes every original back.
- ``reverting``: a revert was interrupted; recovery finishes it.

A lock file serialises edgefleet processes (the agent and a person at the CLI).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from edgefleet.tuning.errors import TuneStateError
from edgefleet.tuning.roots import atomic_write

__all__ = ["Journal", "JournalState", "Original"]

State = Literal["applying", "applied", "reverting"]
VERSION = 1


@dataclass(frozen=True)
class Original:
    knob: str
    key: str
    value: str
    label: str


@dataclass
class JournalState:
    profile: str
    state: State
    boot_id: str | None
    originals: list[Original] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    pid: int = field(default_factory=os.getpid)
    updated: float = 0.0

    def keys(self) -> set[str]:
        return {o.key for o in self.originals}


def _check_header(data: dict[str, object]) -> None:
    if data.get("version") != VERSION or data.get("state") not in {"applying", "applied", "reverting"}:
        raise ValueError(f"unknown version or state: {data.get('version')!r} {data.get('state')!r}")


class Journal:
    """One JSON file in ``state_dir`` (plus a lock file beside it)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / "journal.json"

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def load(self) -> JournalState | None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
            _check_header(data)
            return JournalState(
                profile=str(data["profile"]),
                state=data["state"],
                boot_id=data.get("boot_id"),
                originals=[
                    Original(o["knob"], o["key"], o["value"], o.get("label", o["key"]))
                    for o in data["originals"]
                ],
                refused=[str(r) for r in data.get("refused", [])],
                pid=int(data.get("pid", 0)),
                updated=float(data.get("updated", 0.0)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise TuneStateError(
                f"the tuning journal {self.path} cannot be read ({exc}); "
                "restore the listed originals by hand or remove it",
                code="tune.journal_invalid",
                path=str(self.path),
            ) from exc

    def save(self, state: JournalState) -> None:
        data = {
            "version": VERSION,
            "profile": state.profile,
            "state": state.state,
            "boot_id": state.boot_id,
            "pid": state.pid,
            "updated": state.updated,
            "originals": [o.__dict__ for o in state.originals],
            "refused": state.refused,
        }
        atomic_write(self.path, (json.dumps(data, indent=1) + "\n").encode())

    def clear(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            return
        dfd = os.open(self.state_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
