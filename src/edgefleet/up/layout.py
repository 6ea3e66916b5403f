"""Where `edgefleet up` keeps everything: one directory, one layout, one small state file.

::

    <dir>/up.json            ports, the sign-in token, join tokens, the device id (0600)
    <dir>/server/            the control plane's data directory (SQLite, blobs, keys)
    <dir>/agent/             the device agent's state directory (identity, bundles, sandboxes)
    <dir>/simulator.json     the simulated devices' identities (0600)
    <dir>/keys/, repo/       the bundle signing keys and the TUF repository the bundle is signed into
    <dir>/bundles/           the built bundle tar
    <dir>/pipeline/          the generated clip, the pipeline spec, results.jsonl, request.json
    <dir>/run/<name>.pid     one per process `up` started (pid and start time)
    <dir>/logs/<name>.log    its stdout and stderr
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgefleet.up.errors import UpConflictError

__all__ = ["UpLayout", "UpState", "exclusive"]

STATE_VERSION = 1


@dataclass(frozen=True)
class UpLayout:
    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "up.json"

    @property
    def server_dir(self) -> Path:
        return self.root / "server"

    @property
    def agent_dir(self) -> Path:
        return self.root / "agent"

    @property
    def simulator_state(self) -> Path:
        return self.root / "simulator.json"

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def repo_dir(self) -> Path:
        return self.root / "repo"

    @property
    def bundles_dir(self) -> Path:
        return self.root / "bundles"

    @property
    def pipeline_dir(self) -> Path:
        return self.root / "pipeline"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    @property
    def instance(self) -> str:
        """A short name unique to this directory: the sandboxes' cgroup parent and name prefix."""
        digest = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:10]
        return f"efup-{digest}"

    @property
    def lock_file(self) -> Path:
        return self.root / "up.lock"

    def make(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        for d in (self.run_dir, self.log_dir, self.pipeline_dir, self.bundles_dir):
            d.mkdir(exist_ok=True)


@dataclass
class UpState:
    """What a second `up` reuses. Holds the sign-in token: written with mode 0600."""

    port: int | None = None
    token: str | None = None
    agent_join_token: str | None = None
    simulator_join_token: str | None = None
    device_id: str | None = None
    agent_metrics_port: int | None = None
    pipeline_metrics_port: int | None = None
    preview_port: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, layout: UpLayout) -> UpState:
        path = layout.state_file
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text())
            version = data.pop("version", None)
            state = cls(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise UpConflictError(
                f"{path} cannot be read ({exc}); 'edgefleet down --purge' starts from scratch",
                code="up.state_invalid",
                path=str(path),
            ) from exc
        if version != STATE_VERSION:
            raise UpConflictError(
                f"{path} has format version {version!r}, this edgefleet knows {STATE_VERSION}; "
                "'edgefleet down --purge' starts from scratch",
                code="up.state_invalid",
                path=str(path),
            )
        return state

    def save(self, layout: UpLayout) -> None:
        path = layout.state_file
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"version": STATE_VERSION, **asdict(self)}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)


@contextlib.contextmanager
def exclusive(layout: UpLayout) -> Iterator[None]:
    """Hold the directory's lock: one `up` or `down` at a time works on it."""
    layout.make()
    fd = os.open(layout.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise UpConflictError(
                f"another 'edgefleet up' or 'edgefleet down' is working on {layout.root}; wait for it",
                code="up.busy",
                path=str(layout.root),
            ) from exc
        yield
    finally:
        os.close(fd)
