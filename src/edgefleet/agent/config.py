"""What the agent takes from its command line (every path and timing a parameter, for tests)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgefleet.agent.remote import RemoteWriteConfig

__all__ = ["AgentConfig"]


@dataclass(frozen=True)
class AgentConfig:
    state_dir: Path
    server: str | None = None
    join_token: str | None = None
    ca_file: Path | None = None  # PEM CA the server is verified against (pinned at enrollment)
    ca_fingerprint: str | None = None  # SHA-256 of the server's CA: fetched once and pinned (TOFU)
    name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    poll_wait_s: float = 30.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    report_interval_s: float = 10.0
    ready_timeout_s: float = 120.0
    health_window_s: float = 5.0
    metrics_port: int = -1  # -1: off, 0: a free port (written to the status)
    status_socket: Path | None = None  # default <state>/agent.sock
    workload_prefix: str = "ef"
    cgroup_parent: str = "edgefleet"
    workload_user: str = "nobody"
    serve_command: tuple[str, ...] = (sys.executable, "-m", "edgefleet", "serve")
    keep_bundles: int = 2
    outbox_capacity: int = 1000
    download_rate: float | None = None  # bytes a second for bundle downloads (None: no cap)
    tuning: bool = True
    logs: bool = True  # ship agent and workload logs to the server
    log_buffer_bytes: int = 16 << 20  # compressed batches kept on disk while the server is away
    log_interval_s: float = 2.0  # how often logs are collected and sent
    remote_write: RemoteWriteConfig | None = None  # push /metrics with Prometheus remote-write
    proc_root: Path = Path("/proc")  # device metrics read here (a fixture tree in tests)
    sys_root: Path = Path("/sys")
    nvidia_smi: str | None = None  # path of nvidia-smi; None: looked up on PATH ("" turns it off)
    lock_file: Path | None = None  # default <state>/update.lock
    endpoint_host: str = "127.0.0.1"  # where the deployments' stable ports listen
    failpoint: str | None = None  # tests: SIGKILL the agent at this step of an update

    @property
    def socket_path(self) -> Path:
        return self.status_socket or self.state_dir / "agent.sock"
