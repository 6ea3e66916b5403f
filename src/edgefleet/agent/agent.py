"""The agent: enrollment, the reconcile loop, safe updates, offline autonomy.

State directory layout (every file written atomically: temp, fsync, rename)::

    key.pem          the device's ed25519 key (0600, never sent anywhere)
    identity.json    device id, project, server URL, server public key, trust material
    state.json       what runs (per deployment: release, bundle, sandbox name, ports), the previous
                     version, failed releases, revision reached, report sequence, tuning profile
    desired.json     the last verified desired-state envelope
    outbox.json      events not yet delivered (bounded; oldest dropped first, drops counted)
    bundles/         the content-addressed bundle store
    supervisor/      the sandbox supervisor's directory (adoption after a restart)

An update switches only once the new workload is ready and survived its health window: the switch
is the single write of ``state.json``. A SIGKILL before it leaves the old version recorded (the new
sandbox is removed at the next start), after it the new one (the old sandbox is removed), so the
device is always on one of the two and serving.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgefleet.agent.client import DeviceClient
from edgefleet.agent.config import AgentConfig
from edgefleet.agent.errors import (
    AgentInputError,
    AgentStorageError,
    AgentUnavailableError,
    AgentVerificationError,
)
from edgefleet.agent.fsio import atomic_write, atomic_write_json, read_json, storage_error
from edgefleet.agent.outbox import Outbox
from edgefleet.agent.protocol import verify_document
from edgefleet.agent.sdnotify import notify
from edgefleet.errors import EdgefleetError, VerificationError

if TYPE_CHECKING:
    from edgefleet.sandbox.supervisor import Supervisor, Workload

__all__ = ["Agent"]

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_INSTALL = """
import json, sys
from pathlib import Path
from edgefleet.errors import EdgefleetError
from edgefleet.bundle.store import BundleStore
try:
    b = BundleStore(Path(sys.argv[1])).install(Path(sys.argv[2]), expected_sha256=sys.argv[3])
    print(json.dumps({"sha256": b.sha256}))
except EdgefleetError as exc:
    cause = getattr(exc.__cause__, "errno", None)
    print(json.dumps({"error": {"code": exc.code, "message": exc.message, "errno": cause}}))
except OSError as exc:
    print(json.dumps({"error": {"code": "bundle.write_failed", "message": str(exc), "errno": exc.errno}}))
"""
_VERIFY = """
import json, sys
from pathlib import Path
from edgefleet.errors import EdgefleetError
from edgefleet.bundle.store import BundleStore
try:
    BundleStore(Path(sys.argv[1])).verify(sys.argv[2])
    print(json.dumps({"ok": True}))
except EdgefleetError as exc:
    print(json.dumps({"error": {"code": exc.code, "message": exc.message}}))
"""

log = logging.getLogger("edgefleet.agent")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


@dataclass
class Health:
    ok: bool
    reason: str = ""


class Agent:
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
        self.outbox = Outbox(self.dir / "outbox.json", capacity=config.outbox_capacity)
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

    # -- identity ------------------------------------------------------------------------------

    def _load_key(self) -> Ed25519PrivateKey:
        path = self.dir / "key.pem"
        if not path.exists():
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            atomic_write(path, pem, mode=0o600)
            return key
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise AgentInputError(f"{path}: not an ed25519 key", field="key.pem")
        return loaded

    def enroll(self) -> dict[str, Any]:
        """Identity from disk, or enroll with the join token (the key is made here and stays here)."""
        self.key = self._load_key()
        if self.identity is None:
            if not self.config.server or not self.config.join_token:
                raise AgentInputError("not enrolled yet: give --server and --join-token", field="join-token")
            public = self.key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            body = {
                "join_token": self.config.join_token,
                "public_key": base64.b64encode(public).decode(),
                "inventory": probe_inventory(),
                "labels": self.config.labels,
            }
            if self.config.name:
                body["name"] = self.config.name
            client = DeviceClient(self.config.server)
            data = client.enroll(body)
            identity = {
                "device_id": data["device_id"],
                "project": data["project"],
                "server": self.config.server,
                "server_public_key": data["server_public_key"],
                "server_key_id": data["server_key_id"],
                "trust": data.get("trust") or {},
                "poll_interval_seconds": data.get("poll_interval_seconds"),
                "enrolled_at": _now_iso(),
            }
            atomic_write_json(self.dir / "identity.json", identity)
            self.identity = identity
            log.info("enrolled", extra={"device": identity["device_id"]})
        server = self.config.server or self.identity["server"]
        self.client = DeviceClient(server)
        self.client.device_id = self.identity["device_id"]
        self.client.key = self.key
        return self.identity

    # -- local state ---------------------------------------------------------------------------

    def _save(self) -> None:
        with self._lock:
            atomic_write_json(self.dir / "state.json", self.state)

    @property
    def bundles(self) -> Path:
        """The content-addressed store (``edgefleet.bundle.store`` layout: ``<root>/<sha256>/``)."""
        return self.dir / "bundles"

    def _bundle_dir(self, sha256: str) -> Path:
        if not _DIGEST.match(sha256):
            raise AgentVerificationError(f"bundle sha256 {sha256!r} is not a digest", code="agent.bad_digest")
        return self.bundles / sha256

    def _install(self, tar: Path, sha256: str) -> None:
        """Verify and unpack ``tar`` into the store with :class:`edgefleet.bundle.store.BundleStore`,
        in a child process: the bundle library (pydantic) never loads into the long-running agent."""
        try:
            out = subprocess.run(
                [sys.executable, "-c", _INSTALL, str(self.bundles), str(tar), sha256],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise AgentUnavailableError(f"bundle install could not run: {exc}") from exc
        try:
            result = json.loads(out.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            result = {"error": {"code": "agent.install_failed", "message": out.stderr.strip()[-500:]}}
        if "error" in result:
            err = result["error"]
            if err["code"] == "bundle.write_failed":  # the disk, not the bundle: try again later
                raise storage_error(self.bundles, OSError(err.get("errno"), err["message"]), "install")
            raise AgentVerificationError(str(err["message"]), code=str(err["code"]))

    def _damaged(self, sha256: str) -> str | None:
        """Re-hash an installed bundle against its manifest (in a child process, like installs):
        the reason when the bytes on disk changed, None when intact or when the check cannot run."""
        try:
            out = subprocess.run(
                [sys.executable, "-c", _VERIFY, str(self.bundles), sha256],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
        except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
            log.warning("bundle check could not run", extra={"sha256": sha256, "reason": str(exc)[:300]})
            return None
        if "error" not in result:
            return None
        return f"{result['error']['message']} [{result['error']['code']}]"

    def _drop_if_damaged(self, sha256: str, deployment: str) -> bool:
        """Remove a bundle whose files changed on disk (it is fetched again); True when it was."""
        reason = self._damaged(sha256)
        if reason is None:
            return False
        log.warning("damaged bundle removed", extra={"sha256": sha256, "reason": reason})
        self.outbox.put("bundle_damaged", deployment=deployment, sha256=sha256, reason=reason)
        doomed = self.bundles / f".tmp-gc-{sha256}"
        with contextlib.suppress(OSError):
            self._bundle_dir(sha256).rename(doomed)
            shutil.rmtree(doomed)
        return True

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
        present = {st.name for st in self.supervisor.statuses()}
        for dep, w in list(self.state["workloads"].items()):
            if w["name"] not in present:
                if self._drop_if_damaged(w["sha256"], dep):  # the next desired state fetches it again
                    self.state["workloads"].pop(dep)
                    continue
                log.info("starting the last good version from disk", extra={"deployment": dep})
                self.supervisor.add(self._workload(w))
        self.supervisor.start()

    # -- workloads -----------------------------------------------------------------------------

    def _workload(self, w: dict[str, Any]) -> Workload:
        from edgefleet.sandbox.limits import Limits, parse_size
        from edgefleet.sandbox.spec import Isolation, SandboxSpec, resolve_user
        from edgefleet.sandbox.supervisor import Probe, RestartPolicy, Workload

        res = w.get("resources") or {}
        mem = res.get("memory")
        limits = Limits(
            cpus=float(res["cpus"]) if res.get("cpus") else None,
            cpuset_cpus=res.get("cpuset") or None,
            memory_max=(parse_size(str(mem)) if isinstance(mem, str) else int(mem)) if mem else None,
            pids_max=int(res["pids"]) if res.get("pids") else None,
        )
        bundle_dir = self._bundle_dir(w["sha256"])
        argv = (
            *self.config.serve_command,
            str(bundle_dir / w["model_path"]),
            "--model-name",
            w["model_name"],
            "--http-port",
            str(w["http_port"]),
            "--grpc-port",
            str(w["grpc_port"]),
            "--no-cache",
        )
        spec = SandboxSpec(
            w["name"],
            argv,
            limits,
            Isolation(
                user=resolve_user(self.config.workload_user),
                ro=(bundle_dir, *_own_installation()),
                network="host",
            ),
        )
        return Workload(
            spec,
            restart=RestartPolicy(
                "on-failure", initial_s=1.0, max_s=30.0, crash_loop_restarts=3, crash_loop_window_s=120.0
            ),
            readiness=Probe(
                "http", port=w["http_port"], path="/v2/health/ready", period_s=0.5, timeout_s=2.0
            ),
            liveness=Probe(
                "http",
                port=w["http_port"],
                path="/v2/health/live",
                period_s=5.0,
                timeout_s=3.0,
                initial_delay_s=30.0,
                failure_threshold=3,
            ),
            stop_grace_s=5.0,
        )

    def _wait_healthy(self, name: str) -> Health:
        assert self.supervisor is not None  # noqa: S101 - started before any update
        t0 = self._clock()
        ready_at: float | None = None
        restarts0 = 0
        while not self._halt.is_set():
            st = self.supervisor.status(name)
            now = self._clock()
            last = st.last_exit
            exit_txt = f"; last exit: {last.reason} code {last.exit_code}" if last else ""
            if st.state in {"crash_loop", "exited", "stopped"}:
                return Health(
                    False, f"workload {st.state} after {now - t0:.1f}s, {st.restarts} restarts{exit_txt}"
                )
            if ready_at is None:
                if st.ready:
                    ready_at, restarts0 = now, st.restarts
                elif now - t0 > self.config.ready_timeout_s:
                    return Health(
                        False,
                        f"readiness: not ready within {self.config.ready_timeout_s:g}s "
                        f"({st.restarts} restarts{exit_txt})",
                    )
            else:
                if st.restarts > restarts0 or st.state != "running" or st.ready is False:
                    return Health(
                        False,
                        f"health window: {st.state}, ready={st.ready}, "
                        f"restarts {st.restarts - restarts0} after {now - ready_at:.1f}s "
                        f"of {self.config.health_window_s:g}s{exit_txt}",
                    )
                if now - ready_at >= self.config.health_window_s:
                    return Health(True)
            self._heartbeat = time.monotonic()
            self._halt.wait(0.2)
        return Health(False, "agent stopping")

    def _fail(self, dep: str, w: dict[str, Any], kind: str, reason: str) -> None:
        log.warning("update failed", extra={"deployment": dep, "release": w["release"], "reason": reason})
        self.state["failed"][dep] = {
            "release": w["release"],
            "kind": kind,
            "reason": reason,
            "at": _now_iso(),
        }
        self.updates["refused" if kind == "refused" else "rolled_back"] += 1
        self.outbox.put(
            "update_" + kind,
            deployment=dep,
            release=w["release"],
            version=w["bundle"].get("version"),
            reason=reason,
        )
        self._save_or_note()

    def _save_or_note(self) -> None:
        """Save ``state.json`` where a failed write may wait (the state stays in memory, the next
        save writes it): the reason goes to ``last_error``."""
        try:
            self._save()
        except AgentStorageError as exc:
            self.last_error = f"{exc.message} [{exc.code}]"

    def _wait_for_storage(self, dep: str, exc: AgentStorageError) -> bool:
        self.phase[dep] = "waiting for disk space"
        self.last_error = f"{exc.message} [{exc.code}]"
        log.warning("update waits for disk space", extra={"deployment": dep, "reason": exc.message})
        return False

    def _fetched(self, dep: str, w: dict[str, Any]) -> dict[str, Any] | bool:
        """The bundle's manifest once it is in the store; else what :meth:`_update` returns now:
        False to try again later (server away, disk full), True when the bundle is refused."""
        assert self.client is not None  # noqa: S101 - enrolled before any update
        bundle = w["bundle"]
        sha = bundle["sha256"]
        self.phase[dep] = "downloading"
        try:
            manifest_path = self._bundle_dir(sha) / "bundle.json"
            if manifest_path.is_file():  # installed earlier: check it was not damaged since
                self._drop_if_damaged(sha, dep)
            if not manifest_path.is_file():
                tar = self.dir / "downloads" / f"{sha}.tar"
                self.client.download(bundle["url"], tar, sha256=sha, size=int(bundle["size"]))
                self._install(tar, sha)
                tar.unlink(missing_ok=True)
            manifest: dict[str, Any] = json.loads(manifest_path.read_bytes())
        except AgentUnavailableError as exc:
            self.phase[dep] = "waiting for the server"
            self.last_error = exc.message
            return False
        except AgentStorageError as exc:
            return self._wait_for_storage(dep, exc)
        except VerificationError as exc:
            self.phase.pop(dep, None)
            self._fail(dep, w, "refused", f"bundle refused: {exc.message} [{exc.code}]")
            return True
        return manifest

    def _update(self, w: dict[str, Any]) -> bool:
        """Bring one deployment to ``w``; False when it must be retried later (server away)."""
        assert self.client is not None  # noqa: S101 - enrolled before any update
        assert self.supervisor is not None  # noqa: S101
        dep, bundle = w["deployment"], w["bundle"]
        sha = bundle["sha256"]
        manifest = self._fetched(dep, w)
        if isinstance(manifest, bool):
            return manifest
        self.phase[dep] = "starting"
        old = self.state["workloads"].get(dep)
        entry = {
            "deployment": dep,
            "release": w["release"],
            "release_number": w.get("release_number"),
            "version": bundle.get("version"),
            "bundle_name": bundle.get("name"),
            "sha256": sha,
            "model_path": str(manifest["model"]["path"]),
            "model_name": str(manifest["name"]),
            "resources": w.get("resources") or {},
            "name": f"{self.config.workload_prefix}-{dep}-{w['release']}"[:100],
            "http_port": _free_port(),
            "grpc_port": _free_port(),
            "since": _now_iso(),
        }
        with contextlib.suppress(EdgefleetError):
            self.supervisor.remove(entry["name"], grace_s=1.0)
        try:
            self.supervisor.add(self._workload(entry))
        except OSError as exc:  # the supervisor's own files (a full disk): not the release's fault
            with contextlib.suppress(EdgefleetError, OSError):
                self.supervisor.remove(entry["name"], grace_s=1.0)
            return self._wait_for_storage(dep, storage_error(self.dir / "supervisor", exc, "start"))
        except EdgefleetError as exc:
            self.phase.pop(dep, None)
            self._fail(dep, w, "rolled_back", f"start: {exc.message} [{exc.code}]")
            return True
        health = self._wait_healthy(entry["name"])
        self.phase.pop(dep, None)
        if not health.ok:
            with contextlib.suppress(EdgefleetError):
                self.supervisor.remove(entry["name"], grace_s=2.0)
            self._fail(dep, w, "rolled_back", health.reason)
            return True
        try:
            self._switch(dep, entry, old)
        except AgentStorageError as exc:  # not switched: the old version stays, on disk and here
            with contextlib.suppress(EdgefleetError):
                self.supervisor.remove(entry["name"], grace_s=2.0)
            return self._wait_for_storage(dep, exc)
        if old:
            with contextlib.suppress(EdgefleetError):
                self.supervisor.remove(old["name"])
        self.updates["ok"] += 1
        self.outbox.put(
            "updated",
            deployment=dep,
            release=w["release"],
            version=bundle.get("version"),
            previous=old["version"] if old else None,
        )
        log.info("updated", extra={"deployment": dep, "release": w["release"]})
        return True

    def _switch(self, dep: str, entry: dict[str, Any], old: dict[str, Any] | None) -> None:
        """The switch: one atomic write of ``state.json``; when it fails, memory is put back too."""
        with self._lock:
            before = {k: self.state[k].get(dep) for k in ("workloads", "previous", "failed")}
            if old:
                self.state["previous"][dep] = old
            self.state["workloads"][dep] = entry
            self.state["failed"].pop(dep, None)
            try:
                self._save()
            except AgentStorageError:
                for key, value in before.items():
                    if value is None:
                        self.state[key].pop(dep, None)
                    else:
                        self.state[key][dep] = value
                raise

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
            elif _DIGEST.match(path.name) and path.name not in keep:
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

    def apply(self, signed: dict[str, Any]) -> bool:
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
        for dep in list(self.state["workloads"]):
            if dep not in desired:
                gone = self.state["workloads"].pop(dep)
                self.state["previous"].pop(dep, None)
                self._save()
                with contextlib.suppress(EdgefleetError):
                    self.supervisor.remove(gone["name"])
                self.outbox.put("removed", deployment=dep, release=gone["release"])
        done = True
        for dep, w in desired.items():
            cur = self.state["workloads"].get(dep)
            if cur and cur["release"] == w["release"]:
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
            self.outbox.put("server_unreachable", at=_now_iso(), reason=why or "")
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
            "tuning_profile": self.state.get("tuning"),
            "outbox": {"queued": len(self.outbox), "dropped": self.outbox.dropped},
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

    def _poll_once(
        self, etag: str | None, retry: bool, server_key: bytes, t_start: float
    ) -> tuple[str | None, bool]:
        """One long-poll and, on a new document, one reconcile: ``(etag to send next, retry soon)``."""
        if self.client is None:
            raise AgentUnavailableError("no server client")
        wait = 0.0 if (self.polls == 0 or retry) else self.config.poll_wait_s
        status, new_etag, envelope = self.client.desired_state(etag, wait)
        self.polls += 1
        if self.first_poll_s is None:
            self.first_poll_s = time.monotonic() - t_start
        if self.reachable is not True:
            self._set_reachable(True)
            self._report_now.set()
        self.last_contact = time.time()
        if status != 200 or envelope is None:
            return etag, False
        signed = verify_document(envelope, server_key)
        try:
            atomic_write_json(self.dir / "desired.json", envelope)
        except AgentStorageError as exc:  # a cache of the last document: apply it all the same
            self.last_error = f"{exc.message} [{exc.code}]"
        retry = not self.apply(signed)
        return (None if retry else new_etag), retry

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
            if self.supervisor is not None:
                self.supervisor.close(stop_workloads=False)
            with contextlib.suppress(OSError):
                self.config.socket_path.unlink()


def _own_installation() -> tuple[Path, ...]:
    """Where this Python and edgefleet live, when the sandbox's private /tmp would hide them.

    The workload runs this installation's ``edgefleet serve``; an installation under /tmp (a
    virtualenv in a checkout there, say) must be bound back into the sandbox, read-only.
    """
    import edgefleet

    tmp = Path("/tmp")  # noqa: S108 - the path the sandbox mounts its own tmpfs over
    candidates = {Path(sys.prefix), Path(edgefleet.__file__).resolve().parent.parent}
    return tuple(sorted(p for p in candidates if p.is_relative_to(tmp) and p.is_dir()))
