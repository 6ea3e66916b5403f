"""The agent: enrollment, the reconcile loop, safe updates, offline autonomy.

State directory layout (every file written atomically: temp, fsync, rename)::

    key.pem          the device's ed25519 key (0600, never sent anywhere)
    server-ca.pem    the CA the server's TLS certificate must chain to (pinned at enrollment)
    identity.json    device id, project, server URL, server public key, trust material
    state.json       what runs (per deployment: release, bundle, sandbox name, ports), the previous
                     version, failed releases, revision reached, report sequence, tuning profile
    desired.json     the last verified desired-state envelope
    outbox.json      events not yet delivered (bounded; oldest dropped first, drops counted)
    logs/            log batches not yet delivered (bounded, gzip JSON lines) and the read positions
    bundles/         the content-addressed bundle store
    supervisor/      the sandbox supervisor's directory (adoption after a restart)

    tuf/metadata/    the TUF metadata the device trusts (with a server that hosts a TUF repository)
    models/          each workload's model repository (hot reload of model-only changes)
    update.lock      the lock file processes hold to defer updates

The steps of an update live in :mod:`edgefleet.agent.update` (mixed into :class:`Agent`). An update
switches only once the new workload is ready and survived its health window: the switch is the single
write of ``state.json``. A SIGKILL before it leaves the old version recorded (what the update started
is removed at the next start), after it the new one (the old is removed), so the device is always on
one of the two and serving.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgefleet.agent.client import DeviceClient
from edgefleet.agent.config import AgentConfig
from edgefleet.agent.desired import check_desired
from edgefleet.agent.devicemetrics import DeviceMetrics, nvidia_smi_runner
from edgefleet.agent.endpoint import Endpoint
from edgefleet.agent.errors import (
    AgentInputError,
    AgentStorageError,
    AgentUnavailableError,
    AgentVerificationError,
)
from edgefleet.agent.fsio import atomic_write, atomic_write_json, read_json
from edgefleet.agent.hotreload import load as reload_model
from edgefleet.agent.hotreload import prune
from edgefleet.agent.logbuffer import LogBuffer
from edgefleet.agent.metrics import AgentStats
from edgefleet.agent.outbox import Outbox
from edgefleet.agent.protocol import key_pem, load_key_pem, verify_document
from edgefleet.agent.sdnotify import notify
from edgefleet.agent.tls import context_for, fetch_ca, normalize_fingerprint, pem_fingerprint
from edgefleet.agent.update import DIGEST, UpdateSteps, now_iso
from edgefleet.errors import EdgefleetError

if TYPE_CHECKING:
    from edgefleet.agent.logship import LogShipper, WorkloadLog
    from edgefleet.sandbox.supervisor import Supervisor

__all__ = ["Agent"]

log = logging.getLogger("edgefleet.agent")


def probe_inventory(timeout: float = 120.0) -> dict[str, Any]:
    """The probe inventory, collected in a child process: probing imports ONNX Runtime (to list its
    providers), which the agent process itself never loads."""
    code = "from edgefleet.probe.inventory import collect; print(collect().model_dump_json())"
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, check=True
        )
        data: dict[str, Any] = json.loads(out.stdout)
    except (subprocess.SubprocessError, OSError, ValueError) as exc:
        log.warning("probe failed; enrolling without an inventory", extra={"reason": str(exc)[:500]})
        return {}
    return data


class Agent(UpdateSteps):
    def __init__(self, config: AgentConfig, *, clock: Any = time.monotonic, sleep: Any = None) -> None:
        self.config = config
        self.dir = config.state_dir
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._clock = clock
        self._halt = threading.Event()
        self._sleep = sleep or self._halt.wait
        self._lock = threading.RLock()
        self._report_now = threading.Event()
        self.identity: dict[str, Any] | None = read_json(self.dir / "identity.json")
        self.state: dict[str, Any] = read_json(self.dir / "state.json") or {
            "workloads": {},
            "previous": {},
            "failed": {},
            "revision": 0,
            "seq": 0,
            "tuning": None,
            "desired_revision": 0,
        }
        self.state.setdefault("endpoints", {})
        self.state.setdefault("lock", None)
        self.outbox = Outbox(self.dir / "outbox.json", capacity=config.outbox_capacity)
        self.endpoints: dict[str, Endpoint] = {}
        self.deferred: dict[str, dict[str, Any]] = {}
        self.lock_path = config.lock_file or self.dir / "update.lock"
        self._signed: dict[str, Any] | None = None
        self.client: DeviceClient | None = None
        self.key: Ed25519PrivateKey | None = None
        self.supervisor: Supervisor | None = None
        self.reachable: bool | None = None
        self.last_contact: float | None = None
        self.last_error: str | None = None
        self.phase: dict[str, str] = {}
        self.polls = 0
        self.reports = 0
        self.updates = {"ok": 0, "rolled_back": 0, "refused": 0}
        self.started = time.time()
        self.first_poll_s: float | None = None
        self.metrics_port: int | None = None
        self._heartbeat = time.monotonic()
        self.stats = AgentStats()
        self.logs = LogBuffer(self.dir / "logs", capacity_bytes=config.log_buffer_bytes)
        self.log_shipper: LogShipper | None = None
        self.device_metrics = DeviceMetrics(
            proc=config.proc_root,
            sys=config.sys_root,
            nvidia_smi=nvidia_smi_runner(config.nvidia_smi) if config.nvidia_smi != "" else None,
        )

    # -- identity ------------------------------------------------------------------------------

    def _load_key(self) -> Ed25519PrivateKey:
        path = self.dir / "key.pem"
        if not path.exists():
            key = Ed25519PrivateKey.generate()
            atomic_write(path, key_pem(key), mode=0o600)
            return key
        loaded = load_key_pem(path.read_bytes())
        if loaded is None:
            raise AgentInputError(f"{path}: not an unencrypted PKCS#8 ed25519 key", field="key.pem")
        return loaded

    def _trust(self, server: str) -> bytes | None:
        """The CA an https ``server`` is verified against: ``--ca-file``, the one pinned at
        enrollment, or the server's own when it matches ``--ca-fingerprint``; None: system CAs."""
        cfg, stored = self.config, self.dir / "server-ca.pem"
        if not server.startswith("https:"):
            if cfg.ca_file is not None or cfg.ca_fingerprint:
                raise AgentInputError(
                    f"--ca-file/--ca-fingerprint need an https server, not {server}", field="server"
                )
            return None
        want = normalize_fingerprint(cfg.ca_fingerprint) if cfg.ca_fingerprint else None
        if cfg.ca_file is not None:
            try:
                pem = cfg.ca_file.read_bytes()
            except OSError as exc:
                raise AgentInputError(f"--ca-file {cfg.ca_file}: {exc.strerror}", field="ca-file") from exc
        elif stored.exists():
            pem = stored.read_bytes()
        elif want is not None:
            return self._pin(fetch_ca(server, want), stored)
        else:
            return None
        got = pem_fingerprint(pem)
        if want is not None and got != want:
            raise AgentVerificationError(
                f"the CA certificate {cfg.ca_file or stored} has SHA-256 {got}, not --ca-fingerprint {want}",
                code="agent.tls_untrusted",
            )
        return self._pin(pem, stored) if cfg.ca_file is not None else pem

    @staticmethod
    def _pin(pem: bytes, stored: Path) -> bytes:
        context_for(pem)  # loadable before it is kept
        atomic_write(stored, pem, mode=0o644)
        log.info("server CA pinned", extra={"sha256": pem_fingerprint(pem)})
        return pem

    def enroll(self) -> dict[str, Any]:
        """Identity from disk, or enroll with the join token (the key is made here and stays here)."""
        self.key = self._load_key()
        if self.identity is None:
            if not self.config.server or not self.config.join_token:
                raise AgentInputError("not enrolled yet: give --server and --join-token", field="join-token")
            public = self.key.public_key().public_bytes_raw()
            body = {
                "join_token": self.config.join_token,
                "public_key": base64.b64encode(public).decode(),
                "inventory": probe_inventory(),
                "labels": self.config.labels,
            }
            if self.config.name:
                body["name"] = self.config.name
            client = DeviceClient(
                self.config.server,
                ca_pem=self._trust(self.config.server),
                download_rate=self.config.download_rate,
            )
            data = client.enroll(body)
            identity = {
                "device_id": data["device_id"],
                "project": data["project"],
                "server": self.config.server,
                "server_public_key": data["server_public_key"],
                "server_key_id": data["server_key_id"],
                "trust": data.get("trust") or {},
                "poll_interval_seconds": data.get("poll_interval_seconds"),
                "enrolled_at": now_iso(),
            }
            atomic_write_json(self.dir / "identity.json", identity)
            self.identity = identity
            log.info("enrolled", extra={"device": identity["device_id"]})
        server = self.config.server or self.identity["server"]
        self.client = DeviceClient(
            server, ca_pem=self._trust(server), download_rate=self.config.download_rate
        )
        self.client.device_id = self.identity["device_id"]
        self.client.key = self.key
        return self.identity

    # -- local state ---------------------------------------------------------------------------

    def _save(self) -> None:
        with self._lock:
            atomic_write_json(self.dir / "state.json", self.state)

    def _sandbox_names(self) -> set[str]:
        return {w["name"] for w in self.state["workloads"].values()}

    def _restore(self) -> None:
        """Make the supervisor match ``state.json``: the last good state, from disk."""
        from edgefleet.sandbox.supervisor import Supervisor

        self.supervisor = Supervisor(self.dir / "supervisor", parent=self.config.cgroup_parent)
        keep = self._sandbox_names()
        for st in self.supervisor.statuses():
            if st.name not in keep:
                log.info("removing a workload no update finished", extra={"workload": st.name})
                self.supervisor.remove(st.name, grace_s=2.0)
        self._clean_disk(keep)
        present = {st.name for st in self.supervisor.statuses()}
        for dep, w in list(self.state["workloads"].items()):
            if w["name"] not in present:
                if self._drop_if_damaged(w["sha256"], dep):  # the next desired state fetches it again
                    self.state["workloads"].pop(dep)
                    if w.get("repo"):  # its model file is a hard link to the damaged one
                        shutil.rmtree(w["repo"], ignore_errors=True)
                    continue
                log.info("starting the last good version from disk", extra={"deployment": dep})
                self.supervisor.add(self._workload(w))
            elif w.get("repo") and prune(Path(w["repo"]), w["model_name"], {int(w["model_version"])}):
                # a hot reload that did not reach its switch: back to the recorded version
                with contextlib.suppress(EdgefleetError):
                    reload_model(int(w["http_port"]), w["model_name"], timeout=60.0)
            self._open_endpoint(dep, w)
        self.supervisor.start()

    def _clean_disk(self, keep: set[str]) -> None:
        """Leftovers of updates a crash cut short: half-unpacked bundles, repositories of sandboxes
        that were never recorded."""
        if self.bundles.is_dir():
            for path in self.bundles.iterdir():
                if path.name.startswith(".tmp-"):
                    shutil.rmtree(path, ignore_errors=True)
        models = self.dir / "models"
        if models.is_dir():
            for path in models.iterdir():
                if path.name not in keep:
                    shutil.rmtree(path, ignore_errors=True)

    # -- workloads -----------------------------------------------------------------------------

    def _gc_bundles(self) -> None:
        """Remove bundles nothing runs or may roll back to, and what interrupted work left behind:
        ``bundles/.tmp-*`` (an install or removal cut short) and ``downloads/*`` (a download or
        install cut short; when this runs, every bundle still wanted is installed)."""
        keep = {w["sha256"] for w in self.state["workloads"].values()}
        keep |= {w["sha256"] for w in self.state["previous"].values()}
        downloads = self.dir / "downloads"
        for path in sorted(downloads.iterdir()) if downloads.is_dir() else []:
            with contextlib.suppress(OSError):
                path.unlink()
        if not self.bundles.is_dir():
            return
        for path in self.bundles.iterdir():
            if path.name.startswith(".tmp-"):
                shutil.rmtree(path, ignore_errors=True)
            elif DIGEST.match(path.name) and path.name not in keep:
                doomed = self.bundles / f".tmp-gc-{path.name}"
                with contextlib.suppress(OSError):
                    path.rename(doomed)  # renamed aside first: never seen half-deleted
                    shutil.rmtree(doomed)

    def _apply_tuning(self, profile: str | None) -> None:
        if not self.config.tuning or profile == self.state.get("tuning"):
            return
        from edgefleet.tuning import ProfileStore, Tuner

        tuner = Tuner(state_dir=self.dir / "tune", store=ProfileStore())
        try:
            if profile is None:
                tuner.revert()
            else:
                tuner.apply(profile)
        except EdgefleetError as exc:
            self.outbox.put("tuning_failed", profile=profile, reason=f"{exc.message} [{exc.code}]")
            return
        self.state["tuning"] = profile
        self.outbox.put("tuning_applied" if profile else "tuning_reverted", profile=profile)
        self._save()

    def apply(self, signed: dict[str, Any]) -> bool:  # noqa: PLR0912 - the reconcile steps, in order
        """Reconcile towards ``signed``; True when every step is done (or failed for good)."""
        assert self.supervisor is not None  # noqa: S101 - restored before the first poll
        assert self.identity is not None  # noqa: S101
        if signed.get("device") != self.identity["device_id"]:
            raise AgentVerificationError("desired state is for another device", code="agent.wrong_device")
        revision = int(signed.get("revision", 0))
        if revision < int(self.state.get("desired_revision", 0)):
            raise AgentVerificationError(
                f"desired state revision {revision} is older than {self.state['desired_revision']}",
                code="agent.stale_revision",
            )
        expires = signed.get("expires_at")
        if expires and datetime.fromisoformat(expires) < datetime.now(UTC):
            raise AgentVerificationError(f"desired state expired at {expires}", code="agent.expired")
        self.state["desired_revision"] = revision
        desired = {w["deployment"]: w for w in signed.get("workloads", [])}
        for dep in list(self.deferred):
            if dep not in desired:
                self.deferred.pop(dep)
        for dep in list(self.state["workloads"]):
            if dep not in desired:
                gone = self.state["workloads"].pop(dep)
                self.state["previous"].pop(dep, None)
                self._close_endpoint(dep)
                self._save()
                with contextlib.suppress(EdgefleetError):
                    self.supervisor.remove(gone["name"])
                if gone.get("repo"):
                    shutil.rmtree(gone["repo"], ignore_errors=True)
                self.outbox.put("removed", deployment=dep, release=gone["release"])
        done = True
        for dep, w in desired.items():
            cur = self.state["workloads"].get(dep)
            if cur and cur["release"] == w["release"]:
                self.deferred.pop(dep, None)
                continue
            if self.state["failed"].get(dep, {}).get("release") == w["release"]:
                continue
            done = self._update(w) and done
            self._report_now.set()
        self._apply_tuning(signed.get("tuning_profile"))
        if done:
            if not any(
                f["release"] == desired.get(d, {}).get("release") for d, f in self.state["failed"].items()
            ):
                self.state["revision"] = revision
            self._save()
            self._gc_bundles()
        self._report_now.set()
        return done

    # -- reporting -----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        out: list[dict[str, Any]] = []
        sup = self.supervisor
        for dep, w in self.state["workloads"].items():
            st = None
            if sup is not None:
                with contextlib.suppress(EdgefleetError):
                    st = sup.status(w["name"])
            running = st is not None and st.state == "running"
            out.append(
                {
                    "deployment": dep,
                    "release": w["release"],
                    "status": "running" if running else "failed",
                    "ready": bool(st and st.ready),
                    "crash_loops": 1 if st and st.state == "crash_loop" else 0,
                }
            )
        for dep, f in self.state["failed"].items():
            out.append(
                {
                    "deployment": dep,
                    "release": f["release"],
                    "status": "rolled_back" if f["kind"] == "rolled_back" else "failed",
                    "ready": False,
                    "crash_loops": 0,
                    "reason": f["reason"],
                }
            )
        for dep, d in self.deferred.items():
            out.append(
                {
                    "deployment": dep,
                    "release": d["release"],
                    "status": "deferred",
                    "ready": False,
                    "crash_loops": 0,
                    "reason": d["reason"],
                    "next_window": d.get("next_window"),
                }
            )
        for dep, phase in self.phase.items():
            out.append(
                {
                    "deployment": dep,
                    "release": "pending",
                    "status": "downloading" if phase == "downloading" else "starting",
                    "ready": False,
                }
            )
        return {"workloads": out}

    def report(self) -> bool:
        """Send health, state and buffered events; False when the server is away (events stay)."""
        if self.client is None:
            return False
        events = self.outbox.peek(500)
        if self.outbox.dropped:
            events = [*events[:499], {"kind": "events_dropped", "data": {"count": self.outbox.dropped}}]
        with self._lock:
            self.state["seq"] = int(self.state.get("seq", 0)) + 1
            self._save_or_note()
            body = {
                "seq": self.state["seq"],
                "revision": self.state.get("revision", 0),
                "state": {
                    "workloads": [
                        {"deployment": d, "release": w["release"], "bundle": w["version"]}
                        for d, w in self.state["workloads"].items()
                    ],
                    "tuning_profile": self.state.get("tuning"),
                    "update_lock": self.state.get("lock"),
                    "deferred": self.deferred,
                },
                "health": self.health(),
                "events": events,
            }
        try:
            self.client.report(body)
        except AgentUnavailableError as exc:
            self._set_reachable(False, exc.message)
            return False
        except EdgefleetError as exc:
            self.last_error = exc.message
            return False
        self.outbox.ack(min(len(events), len(self.outbox)))
        self.reports += 1
        self._set_reachable(True)
        return True

    def _set_reachable(self, up: bool, why: str | None = None) -> None:
        if up:
            self.last_contact = time.time()
        if self.reachable is not False and not up:
            self.outbox.put("server_unreachable", at=now_iso(), reason=why or "")
            log.warning("server unreachable", extra={"reason": why})
        self.reachable = up
        if why:
            self.last_error = why

    def _reporter(self) -> None:
        while not self._halt.is_set():
            self._report_now.wait(self.config.report_interval_s)
            self._report_now.clear()
            if self._halt.is_set():
                return
            self.report()
            if time.monotonic() - self._heartbeat < max(120.0, self.config.poll_wait_s * 3):
                notify("WATCHDOG=1")

    def set_lock(self, reason: str | None, by: str = "operator", ttl: Any = None) -> dict[str, Any]:
        """Hold (``reason``) or release (None) the operator's update lock; the lock's state."""
        from edgefleet.agent.lock import operator_lock, parse_ttl

        with self._lock:
            if reason is None:
                self.state["lock"] = None
                self.outbox.put("update_unlocked", by=by)
            else:
                self.state["lock"] = operator_lock(reason, by, parse_ttl(ttl))
                self.outbox.put("update_locked", **self.state["lock"])
            self._save()
        self._report_now.set()
        return {"update_lock": self.state["lock"]}

    # -- status --------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        wl: list[dict[str, Any]] = []
        for dep, w in self.state["workloads"].items():
            item: dict[str, Any] = {
                "deployment": dep,
                "release": w["release"],
                "version": w["version"],
                "sandbox": w["name"],
                "http_port": w["http_port"],
                "grpc_port": w["grpc_port"],
                "endpoint": self.state["endpoints"].get(dep),
                "model_version": w.get("model_version"),
            }
            if self.supervisor is not None:
                with contextlib.suppress(EdgefleetError):
                    st = self.supervisor.status(w["name"])
                    item |= {
                        "state": st.state,
                        "ready": st.ready,
                        "restarts": st.restarts,
                        "pid": st.pid,
                        "adopted": st.adopted,
                        "last_error": st.last_error,
                    }
            wl.append(item)
        ident = self.identity or {}
        return {
            "device_id": ident.get("device_id"),
            "project": ident.get("project"),
            "server": ident.get("server"),
            "server_reachable": self.reachable,
            "last_contact": self.last_contact,
            "last_error": self.last_error,
            "desired_revision": self.state.get("desired_revision", 0),
            "reached_revision": self.state.get("revision", 0),
            "workloads": wl,
            "previous": {d: w["version"] for d, w in self.state["previous"].items()},
            "failed": self.state["failed"],
            "in_progress": dict(self.phase),
            "deferred": dict(self.deferred),
            "update_lock": {"operator": self.state.get("lock"), "file": str(self.lock_path)},
            "tuning_profile": self.state.get("tuning"),
            "outbox": {"queued": len(self.outbox), "dropped": self.outbox.dropped},
            "logs": self.logs.stats() | {"error": self.log_shipper.last_error if self.log_shipper else None},
            "remote_writes": dict(self.stats.remote_writes),
            "polls": self.polls,
            "reports": self.reports,
            "updates": dict(self.updates),
            "first_poll_s": self.first_poll_s,
            "metrics_port": self.metrics_port,
            "pid": os.getpid(),
            "heavy_modules": sorted(
                m
                for m in (
                    "numpy",
                    "onnxruntime",
                    "pydantic",
                    "sqlalchemy",
                    "fastapi",
                    "httpx",
                    "typer",
                    "rich",
                )
                if m in sys.modules
            ),
        }

    def _workload_logs(self) -> dict[str, WorkloadLog]:
        """Every supervised sandbox (an update's new one too) with its deployment and output.log."""
        from edgefleet.agent.logship import WorkloadLog

        sup = self.supervisor
        if sup is None:
            return {}
        by_name = {w["name"]: dep for dep, w in self.state["workloads"].items()}
        prefix = self.config.workload_prefix + "-"
        out = {}
        for st in sup.statuses():
            dep = by_name.get(st.name) or st.name.removeprefix(prefix).rsplit("-", 1)[0]
            out[st.name] = WorkloadLog(dep, sup.sandbox.run_dir / st.name / "output.log")
        return out

    # -- main loop -----------------------------------------------------------------------------

    def stop(self) -> None:
        self._halt.set()
        self._report_now.set()

    def _start_threads(self) -> None:
        from edgefleet.agent.local import serve_metrics, serve_status

        targets: list[tuple[str, Any, tuple[Any, ...]]] = [
            ("agent-status", serve_status, (self, self.config.socket_path, self._halt)),
            ("agent-report", self._reporter, ()),
        ]
        if self.config.metrics_port >= 0:
            targets.append(("agent-metrics", serve_metrics, (self, self.config.metrics_port, self._halt)))
        if self.config.logs:
            from edgefleet.agent.logship import LogShipper, send_batch

            client = self.client
            self.log_shipper = LogShipper(
                self.logs,
                workloads=self._workload_logs,
                send=(lambda b: send_batch(client, b)) if client is not None else None,
                cursors=self.dir / "logs" / "cursors.json",
            )
            targets.append(("agent-logs", self.log_shipper.run, (self.config.log_interval_s, self._halt)))
        if self.config.remote_write is not None:
            from edgefleet.agent.remote import run_remote_write

            targets.append(
                ("agent-remote-write", run_remote_write, (self, self.config.remote_write, self._halt))
            )
        for name, target, args in targets:
            threading.Thread(target=target, args=args, name=name, daemon=True).start()

    def _recover_tuning(self) -> None:
        if not self.config.tuning or not (self.dir / "tune" / "journal.json").exists():
            return  # nothing was ever applied: the tuning library need not load
        from edgefleet.tuning import recover

        try:
            recover(self.dir / "tune")
        except EdgefleetError as exc:
            log.warning("tuning recovery failed", extra={"reason": exc.message})

    def _recheck_s(self) -> float:
        """How soon a deferred update is looked at again: a lock every 5 s, a window when it opens."""
        out = self.config.poll_wait_s
        now = datetime.now(UTC)
        for d in self.deferred.values():
            at = d.get("next_window")
            if d.get("by") == "window" and at:
                out = min(out, max(1.0, (datetime.fromisoformat(at) - now).total_seconds() + 0.5))
            else:
                out = min(out, 5.0)
        return out

    def _cache_desired(self, envelope: dict[str, Any]) -> None:
        """Keep the last verified document in ``desired.json``; a failed write (a full disk) is
        noted in ``last_error`` and the document is applied all the same."""
        try:
            atomic_write_json(self.dir / "desired.json", envelope)
        except AgentStorageError as exc:
            self.last_error = f"{exc.message} [{exc.code}]"

    def _poll_once(
        self, etag: str | None, retry: bool, server_key: bytes, t_start: float
    ) -> tuple[str | None, bool]:
        """One long-poll and, on a new document (or a deferred update to look at again), one
        reconcile: ``(etag to send next, retry soon)``."""
        if self.client is None:
            self.enroll()  # the start could not pin the server's CA (server away): try again
        if self.client is None:
            raise AgentUnavailableError("no server client")
        if self.polls == 0 or (retry and not self.deferred):
            wait = 0.0
        elif self.deferred:
            wait = self._recheck_s()
        else:
            wait = self.config.poll_wait_s
        status, new_etag, envelope = self.client.desired_state(etag, wait)
        self.polls += 1
        if self.first_poll_s is None:
            self.first_poll_s = time.monotonic() - t_start
        if self.reachable is not True:
            self._set_reachable(True)
            self._report_now.set()
        self.last_contact = time.time()
        if status == 200 and envelope is not None:
            self._signed = check_desired(verify_document(envelope, server_key))
            self._cache_desired(envelope)
            etag = new_etag
        elif not (self.deferred and self._signed is not None):
            return etag, False
        assert self._signed is not None  # noqa: S101 - set above or deferred on it
        t0 = time.monotonic()
        try:
            applied = self.apply(self._signed)
        except EdgefleetError:
            self.stats.reconciled("error", time.monotonic() - t0)
            raise
        self.stats.reconciled("ok" if applied else "retry", time.monotonic() - t0)
        if applied:
            return etag, False
        if self.deferred and "waiting for the server" not in self.phase.values():
            return etag, False  # the next poll is short and looks at the deferral again
        return None, True

    def run(self, *, t_start: float | None = None) -> None:
        """Enroll (or load the identity), restore the last good state, then follow the server."""
        t_start = time.monotonic() if t_start is None else t_start
        self._recover_tuning()
        try:
            self.enroll()
        except AgentUnavailableError as exc:
            if self.identity is None:
                raise
            self._set_reachable(False, exc.message)
        self._restore()
        self._start_threads()
        notify("READY=1")
        etag: str | None = None
        delay = self.config.backoff_initial_s
        retry = False
        server_key = base64.b64decode((self.identity or {})["server_public_key"])
        try:
            while not self._halt.is_set():
                self._heartbeat = time.monotonic()
                try:
                    etag, retry = self._poll_once(etag, retry, server_key, t_start)
                    delay = self.config.backoff_initial_s
                    if retry:
                        self._sleep(min(delay, 5.0))
                    continue
                except AgentUnavailableError as exc:
                    self._set_reachable(False, exc.message)
                except EdgefleetError as exc:
                    self.last_error = f"{exc.message} [{exc.code}]"
                    log.warning("poll failed", extra={"reason": self.last_error})
                    self.outbox.put("poll_refused", reason=self.last_error)
                self._sleep(delay * random.uniform(0.5, 1.5))  # noqa: S311 - jitter, not crypto
                delay = min(delay * 2, self.config.backoff_max_s)
        finally:
            notify("STOPPING=1")
            self._halt.set()
            self._report_now.set()
            for ep in self.endpoints.values():
                ep.close()
            if self.supervisor is not None:
                self.supervisor.close(stop_workloads=False)
            with contextlib.suppress(OSError):
                self.config.socket_path.unlink()
