"""``python -m edgefleet.agent``: the agent process itself, without the CLI framework (small RSS).

``edgefleet agent run`` execs this, so the long-running process never holds typer or rich.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgefleet.agent.remote import RemoteWriteConfig

__all__ = ["main"]


class _JsonFormatter(logging.Formatter):
    _SKIP = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out |= {k: v for k, v in record.__dict__.items() if k not in self._SKIP}
        return json.dumps(out, default=str)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgefleet agent")
    sub = p.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("--state-dir", type=Path, required=True)
    run.add_argument("--server")
    run.add_argument("--join-token")
    run.add_argument("--ca-file", type=Path)
    run.add_argument("--ca-fingerprint")
    run.add_argument("--name")
    run.add_argument("--label", action="append", default=[])
    run.add_argument("--poll-wait", type=float, default=30.0)
    run.add_argument("--backoff-max", type=float, default=60.0)
    run.add_argument("--report-interval", type=float, default=10.0)
    run.add_argument("--ready-timeout", type=float, default=120.0)
    run.add_argument("--health-window", type=float, default=5.0)
    run.add_argument("--metrics-port", type=int, default=-1)
    run.add_argument("--status-socket", type=Path)
    run.add_argument("--workload-prefix", default="ef")
    run.add_argument("--cgroup-parent", default="edgefleet")
    run.add_argument("--workload-user", default="nobody")
    run.add_argument("--outbox-capacity", type=int, default=1000)
    run.add_argument("--download-rate")
    run.add_argument("--no-tuning", action="store_true")
    run.add_argument("--no-logs", action="store_true", help="do not ship logs to the server")
    run.add_argument("--log-buffer-bytes", type=int, default=16 << 20)
    run.add_argument("--log-interval", type=float, default=2.0)
    run.add_argument("--remote-write-url")
    run.add_argument("--remote-write-interval", type=float, default=30.0)
    run.add_argument("--remote-write-bearer-token-file", type=Path)
    run.add_argument("--remote-write-username")
    run.add_argument("--remote-write-password-file", type=Path)
    run.add_argument("--proc-root", type=Path, default=Path("/proc"))
    run.add_argument("--sys-root", type=Path, default=Path("/sys"))
    run.add_argument("--nvidia-smi", help="path of nvidia-smi; '' turns GPU metrics from it off")
    run.add_argument("--log-level", default="info")
    run.add_argument("--lock-file", type=Path)
    run.add_argument("--endpoint-host", default="127.0.0.1")
    run.add_argument("--failpoint", help=argparse.SUPPRESS)  # tests: SIGKILL at one step of an update
    st = sub.add_parser("status")
    lk = sub.add_parser("lock")
    lk.add_argument("--reason", required=True)
    lk.add_argument("--ttl")
    lk.add_argument("--by")
    ul = sub.add_parser("unlock")
    for cmd in (st, lk, ul):
        cmd.add_argument("--state-dir", type=Path, required=True)
        cmd.add_argument("--status-socket", type=Path)
    return p


def _labels(items: list[str]) -> dict[str, str]:
    from edgefleet.agent.errors import AgentInputError

    labels: dict[str, str] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise AgentInputError(f"--label: {item!r} is not key=value", field="label")
        labels[k] = v
    return labels


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _rate(text: str | None) -> float | None:
    """``--download-rate``: bytes a second, with an optional K, M or G (1024-based) and a ``/s``."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?(?:/s)?\s*", text, re.IGNORECASE)
    rate = float(m.group(1)) * _UNITS[m.group(2).lower()] if m else 0.0
    if rate < 1024:
        from edgefleet.agent.errors import AgentInputError

        raise AgentInputError(
            f"--download-rate: {text!r} is not a rate of at least 1K a second (e.g. 512K, 2M, 1.5M/s)",
            field="download-rate",
        )
    return rate


def _remote_write(args: argparse.Namespace) -> RemoteWriteConfig | None:
    from edgefleet.agent.errors import AgentInputError
    from edgefleet.agent.remote import RemoteWriteConfig

    url = args.remote_write_url
    if not url:
        for opt in ("bearer_token_file", "username", "password_file"):
            if getattr(args, f"remote_write_{opt}") is not None:
                raise AgentInputError(
                    f"--remote-write-{opt.replace('_', '-')} needs --remote-write-url",
                    field="remote-write-url",
                )
        return None
    if not url.startswith(("http://", "https://")):
        raise AgentInputError(
            f"--remote-write-url: {url!r} is not an http(s) URL (e.g. http://prometheus:9090/api/v1/write)",
            field="remote-write-url",
        )
    if args.remote_write_interval < 1:
        raise AgentInputError("--remote-write-interval: at least 1 second", field="remote-write-interval")
    if args.remote_write_password_file is not None and args.remote_write_username is None:
        raise AgentInputError(
            "--remote-write-password-file needs --remote-write-username", field="remote-write-username"
        )
    config = RemoteWriteConfig(
        url=url,
        interval_s=args.remote_write_interval,
        bearer_token_file=args.remote_write_bearer_token_file,
        username=args.remote_write_username,
        password_file=args.remote_write_password_file,
    )
    config.headers()  # an unreadable secret file, or both kinds of auth, fail now
    return config


def main(argv: Sequence[str] | None = None) -> int:
    t0 = time.monotonic()
    args = parser().parse_args(argv)
    from edgefleet.errors import EdgefleetError

    try:
        if args.cmd in {"status", "lock", "unlock"}:
            from edgefleet.agent.local import request

            req: dict[str, object] = {"op": args.cmd}
            if args.cmd == "lock":
                who = args.by or os.environ.get("USER") or "operator"
                req |= {"reason": args.reason, "ttl": args.ttl, "by": who}
            out = request(args.status_socket or args.state_dir / "agent.sock", req)
            sys.stdout.write(json.dumps(out, indent=1) + "\n")
            return 0
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_JsonFormatter())
        logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
        from edgefleet.agent.agent import Agent
        from edgefleet.agent.config import AgentConfig

        labels = _labels(args.label)
        config = AgentConfig(
            state_dir=args.state_dir.absolute(),
            server=args.server,
            join_token=args.join_token,
            ca_file=args.ca_file,
            ca_fingerprint=args.ca_fingerprint,
            name=args.name,
            labels=labels,
            poll_wait_s=args.poll_wait,
            backoff_max_s=args.backoff_max,
            report_interval_s=args.report_interval,
            ready_timeout_s=args.ready_timeout,
            health_window_s=args.health_window,
            metrics_port=args.metrics_port,
            status_socket=args.status_socket,
            workload_prefix=args.workload_prefix,
            cgroup_parent=args.cgroup_parent,
            workload_user=args.workload_user,
            outbox_capacity=args.outbox_capacity,
            download_rate=_rate(args.download_rate),
            tuning=not args.no_tuning,
            logs=not args.no_logs,
            log_buffer_bytes=args.log_buffer_bytes,
            log_interval_s=args.log_interval,
            remote_write=_remote_write(args),
            proc_root=args.proc_root,
            sys_root=args.sys_root,
            nvidia_smi=args.nvidia_smi,
            lock_file=args.lock_file.absolute() if args.lock_file else None,
            endpoint_host=args.endpoint_host,
            failpoint=args.failpoint,
        )
        if config.log_buffer_bytes < 65536 or config.log_interval_s <= 0:
            from edgefleet.agent.errors import AgentInputError

            raise AgentInputError(
                "--log-buffer-bytes: at least 65536; --log-interval: more than 0", field="log-buffer-bytes"
            )
        agent = Agent(config)
        if config.logs:
            from edgefleet.agent.logship import BufferHandler

            logging.getLogger().addHandler(BufferHandler(agent.logs))
        signal.signal(signal.SIGTERM, lambda *_: agent.stop())
        signal.signal(signal.SIGINT, lambda *_: agent.stop())
        agent.run(t_start=t0)
    except EdgefleetError as exc:
        sys.stderr.write(f"error: {exc.message} [{exc.code}]\n")
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
