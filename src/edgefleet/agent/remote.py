"""Push the agent's metrics with Prometheus remote-write, for devices nobody can scrape.

Every ``interval`` seconds the samples of ``/metrics`` (:func:`edgefleet.agent.metrics.collect`)
go to the URL with :class:`edgefleet.telemetry.remote_write.RemoteWriter`, labelled
``job="edgefleet-agent"``, ``instance=<device id>`` and ``device=<device id>``. Optional
authentication: a bearer token or a basic-auth user and password, each read from a file so no
secret sits on the command line. A failed push is counted (``edgefleet_agent_remote_writes_total
{result="error"}``) and logged; the next interval pushes fresh samples (no backlog is kept: the
bounded buffers are for events and logs).
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgefleet.agent.errors import AgentInputError
from edgefleet.agent.exposition import samples
from edgefleet.errors import EdgefleetError

if TYPE_CHECKING:
    from edgefleet.agent.agent import Agent

__all__ = ["RemoteWriteConfig", "push_once", "run_remote_write"]

log = logging.getLogger("edgefleet.agent.remote_write")


@dataclass(frozen=True)
class RemoteWriteConfig:
    url: str
    interval_s: float = 30.0
    bearer_token_file: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    timeout_s: float = 10.0

    def headers(self) -> dict[str, str]:
        """The Authorization header, read from the secret files now (they may be rotated)."""
        if self.bearer_token_file is not None and self.username is not None:
            raise AgentInputError(
                "remote-write: give a bearer token file or a username, not both",
                field="remote-write-username",
            )
        if self.bearer_token_file is not None:
            return {
                "Authorization": f"Bearer {_secret(self.bearer_token_file, 'remote-write-bearer-token-file')}"
            }
        if self.username is not None:
            password = _secret(self.password_file, "remote-write-password-file") if self.password_file else ""
            raw = base64.b64encode(f"{self.username}:{password}".encode()).decode()
            return {"Authorization": f"Basic {raw}"}
        return {}


def _secret(path: Path, option: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise AgentInputError(f"--{option}: cannot read {path}: {exc.strerror or exc}", field=option) from exc


def push_once(agent: Agent, config: RemoteWriteConfig) -> int:
    """Push the current samples now; returns the number of series sent."""
    from edgefleet.agent.metrics import collect
    from edgefleet.telemetry.remote_write import RemoteWriter, TimeSeries

    device = (agent.identity or {}).get("device_id") or "unenrolled"
    extra = {"job": "edgefleet-agent", "instance": device, "device": device}
    now_ms = int(time.time() * 1000)
    series = [TimeSeries(labels, ((value, now_ms),)) for labels, value in samples(collect(agent), extra)]
    writer = RemoteWriter(
        config.url, headers=config.headers(), timeout=config.timeout_s, max_attempts=2, backoff=1.0
    )
    return writer.push(series)


def run_remote_write(
    agent: Agent, config: RemoteWriteConfig, halt: threading.Event, *, push: Callable[[], int] | None = None
) -> None:
    """Push every ``interval_s`` until ``halt``; failures are counted and logged, never raised."""
    do = push or (lambda: push_once(agent, config))
    failing = False
    while not halt.wait(config.interval_s):
        try:
            do()
        except EdgefleetError as exc:
            agent.stats.remote_writes["error"] += 1
            if not failing:
                log.warning("remote write failed", extra={"url": config.url, "reason": exc.message})
            failing = True
            continue
        agent.stats.remote_writes["ok"] += 1
        if failing:
            log.info("remote write works again", extra={"url": config.url})
        failing = False
