"""Everything one running server shares: settings, database, keys, blobs, clock, change notices."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import event
from sqlalchemy.orm import Session

from edgefleet.server.auth import NonceCache
from edgefleet.server.blobs import BlobStore
from edgefleet.server.keys import ServerKey, TrustStore
from edgefleet.server.ratelimit import GuessLimiter
from edgefleet.server.store.database import Database

__all__ = ["Clock", "LastSeenBuffer", "Notifier", "ServerContext", "ServerSettings", "utcnow"]

Clock = Callable[[], float]


def utcnow(clock: Clock = time.time) -> datetime:
    return datetime.fromtimestamp(clock(), tz=UTC)


class ServerSettings(BaseModel):
    """Settings of one control-plane process (built from `edgefleet server run` options)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Field(description="Database (SQLite), blobs and the server key live here.")
    db_url: str | None = Field(default=None, description="postgresql://... ; default SQLite in data_dir.")
    db_schema: str | None = Field(default=None, description="PostgreSQL schema for every table.")
    host: str = Field(default="127.0.0.1")
    port: int = Field(default=8470, ge=0, le=65535)
    public_url: str | None = Field(default=None, description="URL devices use to reach this server.")
    max_poll_wait_seconds: float = Field(default=60, ge=0, le=600, description="Longest long-poll wait.")
    poll_recheck_seconds: float = Field(
        default=5, gt=0, description="How often a waiting long-poll re-reads the database (other replicas)."
    )
    rollout_tick_seconds: float = Field(default=1.0, gt=0, description="How often rollouts are driven.")
    lease_seconds: float = Field(default=15.0, gt=0, description="How long a replica owns a rollout.")
    last_seen_flush_seconds: float = Field(default=2.0, gt=0, description="Batching of last-seen writes.")
    offline_after_seconds: float = Field(
        default=300, gt=0, description="A device silent this long is offline."
    )
    event_retention_days: float = Field(default=14, gt=0, description="Device events older than this go.")
    max_events_per_device: int = Field(default=1000, ge=10, description="Newest events kept per device.")
    log_retention_days: float = Field(default=7, gt=0, description="Device log lines older than this go.")
    max_log_lines_per_device: int = Field(
        default=100_000, ge=10, description="Newest device log lines kept per device."
    )
    max_log_batch_bytes: int = Field(
        default=8 << 20, ge=1024, description="Largest log batch a device may send (uncompressed)."
    )
    max_upload_bytes: int = Field(default=4 * 1024**3, gt=0, description="Largest bundle upload.")
    desired_state_ttl_seconds: float = Field(default=7 * 86400, gt=0, description="Signed document expiry.")
    replica_id: str = Field(default="", description="Name of this replica in leases; random when empty.")
    auth_failure_limit: int = Field(
        default=20,
        ge=0,
        description="Failed API-token or join-token attempts one source address may make inside "
        "auth_failure_window_seconds before it is refused with 429 (0: no limit).",
    )
    auth_failure_window_seconds: float = Field(
        default=60, gt=0, description="Sliding window of auth_failure_limit."
    )
    tls_ca_file: Path | None = Field(
        default=None,
        description="CA certificate (PEM) devices pin; published at /device/v1/ca.pem for "
        "`agent run --ca-fingerprint` (trust on first use against the printed fingerprint).",
    )
    tuf_keys_dir: Path | None = Field(
        default=None,
        description="Keys directory of `edgefleet keys init` (root chain, online keys, optionally a "
        "targets key): host a TUF repository of the bundles and have devices verify them with it.",
    )
    tuf_passphrase_env: str | None = Field(
        default=None, description="Environment variable holding the passphrase of an encrypted targets key."
    )


class Notifier:
    """Wakes long-polls waiting on devices whose desired state changed (this process only).

    ``notify`` may be called from any thread; waiters live on the server's event loop.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def notify(self, devices: Iterable[str]) -> None:
        ids = list(devices)
        loop = self._loop
        if not ids or loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._wake, ids)

    def notify_after_commit(self, session: Session, devices: Iterable[str]) -> None:
        """Notify once ``session``'s transaction has committed, and not at all when it rolls back.

        A woken long-poll reads the desired state in its own transaction: woken before the commit, it
        would read the old rows and wait for its next recheck instead of answering at once.
        """
        ids = list(devices)
        if not ids:
            return
        if not session.in_transaction():
            self.notify(ids)
            return
        event.listen(session, "after_commit", lambda _s: self.notify(ids), once=True)

    def _wake(self, ids: list[str]) -> None:
        for d in ids:
            for fut in self._waiters.pop(d, set()):
                if not fut.done():
                    fut.set_result(None)

    async def wait(self, device: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a change to ``device``; True when notified."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(device, set()).add(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return False
        finally:
            waiters = self._waiters.get(device)
            if waiters is not None:
                waiters.discard(fut)
                if not waiters:
                    self._waiters.pop(device, None)
        return True


class LastSeenBuffer:
    """Collects "device X was seen at T" and writes them in one statement per flush."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def mark(self, device: str, at: float) -> None:
        with self._lock:
            self._seen[device] = at

    def drain(self) -> dict[str, float]:
        with self._lock:
            out, self._seen = self._seen, {}
        return out


@dataclass
class ServerContext:
    settings: ServerSettings
    db: Database
    key: ServerKey
    blobs: BlobStore
    trust: TrustStore
    clock: Clock = time.time
    notifier: Notifier = field(default_factory=Notifier)
    nonces: NonceCache = field(default_factory=NonceCache)
    last_seen: LastSeenBuffer = field(default_factory=LastSeenBuffer)
    guesses: GuessLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.guesses = GuessLimiter(
            self.settings.auth_failure_limit, self.settings.auth_failure_window_seconds, clock=self.clock
        )

    def now(self) -> datetime:
        return utcnow(self.clock)
