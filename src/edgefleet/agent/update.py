"""The steps of one update: fetch and verify, defer, hot reload or blue/green, switch, clean up.

Mixed into :class:`edgefleet.agent.agent.Agent`, which owns the state these steps read and write
(``state.json``, the supervisor, the endpoints, the outbox). Every step is shown in the status
(``in_progress``) and is a failpoint (``--failpoint STEP``, for tests)::

    downloading -> verifying (and unpacking, in the child) -> staging
        -> starting (blue/green) | reloading (hot reload) -> health_window -> switching -> cleanup

The switch is the single write of ``state.json``: a SIGKILL before it leaves the old version recorded
(what the update started is removed at the next start), after it the new one (the old is removed).

A write that fails for lack of space (a download, an install, staging, the sandbox's files, the
switch) is an :class:`~edgefleet.agent.errors.AgentStorageError`: what the update started is undone,
the old version keeps serving, the update waits ("waiting for disk space") and is tried again at the
next poll. A bundle already in the store is re-hashed (in a child process) before it is used again;
a damaged one is removed, reported (``bundle_damaged``) and downloaded again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefleet.agent.config import AgentConfig
from edgefleet.agent.endpoint import Endpoint
from edgefleet.agent.errors import AgentStorageError, AgentUnavailableError, AgentVerificationError
from edgefleet.agent.fsio import storage_error
from edgefleet.agent.hotreload import load as reload_model
from edgefleet.agent.hotreload import model_file, prune, stage, version_ready
from edgefleet.agent.lock import active as lock_active
from edgefleet.agent.lock import file_lock_holder
from edgefleet.agent.outbox import Outbox
from edgefleet.errors import EdgefleetError, VerificationError

if TYPE_CHECKING:
    from edgefleet.agent.client import DeviceClient
    from edgefleet.sandbox.supervisor import Supervisor, Workload

__all__ = ["DIGEST", "Health", "UpdateSteps", "free_port", "now_iso", "own_installation"]

DIGEST = re.compile(r"^[0-9a-f]{64}$")
log = logging.getLogger("edgefleet.agent")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Health:
    ok: bool
    reason: str = ""


class UpdateSteps:
    """The update half of the agent (see the module docstring)."""

    # owned and set up by the Agent
    config: AgentConfig
    dir: Path
    state: dict[str, Any]
    phase: dict[str, str]
    deferred: dict[str, dict[str, Any]]
    endpoints: dict[str, Endpoint]
    lock_path: Path
    outbox: Outbox
    client: DeviceClient | None
    supervisor: Supervisor | None
    updates: dict[str, int]
    last_error: str | None
    _lock: Any
    _halt: threading.Event
    _report_now: threading.Event
    _clock: Any
    _heartbeat: float

    def _save(self) -> None:
        raise NotImplementedError  # the Agent's

    @property
    def bundles(self) -> Path:
        """The content-addressed store (``edgefleet.bundle.store`` layout: ``<root>/<sha256>/``)."""
        return self.dir / "bundles"

    def _bundle_dir(self, sha256: str) -> Path:
        if not DIGEST.match(sha256):
            raise AgentVerificationError(f"bundle sha256 {sha256!r} is not a digest", code="agent.bad_digest")
        return self.bundles / sha256

    def _install(self, tar: Path, sha256: str, name: str, version: str) -> dict[str, Any]:
        """Verify ``tar`` and unpack it into the store, in a child process (``edgefleet.agent.verify``):
        TUF metadata when the server hosts a repository, then every file against ``bundle.json``. The
        bundle and TUF libraries (pydantic, python-tuf) never load into the long-running agent."""
        try:
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "edgefleet.agent.verify",
                    str(self.dir),
                    str(tar),
                    sha256,
                    name,
                    version,
                ],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
                env=os.environ | {"EDGEFLEET_AGENT_FAILPOINT": self.config.failpoint or ""},
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise AgentUnavailableError(f"bundle verification could not run: {exc}") from exc
        try:
            result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            result = {"error": {"code": "agent.install_failed", "message": out.stderr.strip()[-500:]}}
        if "error" in result:
            err = result["error"]
            if err["code"] == "bundle.write_failed":  # the disk, not the bundle: try again later
                raise storage_error(self.bundles, OSError(err.get("errno"), err["message"]), "install")
            if err.get("retry"):
                raise AgentUnavailableError(str(err["message"]), code=str(err["code"]))
            raise AgentVerificationError(str(err["message"]), code=str(err["code"]))
        return result

    def _manifest_digest(self, sha256: str) -> str:
        """The sha256 of an installed bundle's ``bundle.json``, recorded with the workload: the file
        hashes are checked against the manifest, and this checks the manifest itself."""
        return hashlib.sha256((self._bundle_dir(sha256) / "bundle.json").read_bytes()).hexdigest()

    def _damaged(self, sha256: str) -> str | None:
        """Re-hash an installed bundle against its manifest (in a child process, like installs) and
        its manifest against the digest recorded when it was installed: the reason when the bytes on
        disk changed, None when intact or when the check cannot run."""
        recorded = {
            w.get("manifest_sha256")
            for group in ("workloads", "previous")
            for w in self.state[group].values()
            if w.get("sha256") == sha256
        } - {None}
        if recorded:
            try:
                digest = self._manifest_digest(sha256)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                return f"bundle {sha256}: bundle.json cannot be read: {reason} [bundle.missing_file]"
            if digest not in recorded:
                return (
                    f"bundle {sha256}: bundle.json has sha256 {digest}, not the {min(recorded)} "
                    "recorded at install [bundle.hash_mismatch]"
                )
        try:
            out = subprocess.run(
                [sys.executable, "-m", "edgefleet.agent.verify", "--installed", str(self.bundles), sha256],
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

    def _open_endpoint(self, dep: str, w: dict[str, Any]) -> None:
        """The deployment's stable port (kept in ``state.json``), forwarding to ``w``'s workload."""
        ep = self.endpoints.get(dep)
        if ep is None:
            wanted = (w.get("serving") or {}).get("http_port") or self.state["endpoints"].get(dep) or 0
            try:
                ep = Endpoint(int(wanted), host=self.config.endpoint_host)
            except OSError as exc:
                log.warning(
                    "the deployment's port is taken; using another",
                    extra={"deployment": dep, "port": wanted, "reason": str(exc)},
                )
                ep = Endpoint(0, host=self.config.endpoint_host)
            self.endpoints[dep] = ep
            if self.state["endpoints"].get(dep) != ep.port:
                self.state["endpoints"][dep] = ep.port
                self._save()
        ep.set_backend(int(w["http_port"]))

    def _close_endpoint(self, dep: str) -> None:
        ep = self.endpoints.pop(dep, None)
        if ep is not None:
            ep.close()
        self.state["endpoints"].pop(dep, None)

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
        if w.get("repo"):  # a model repository of its own: hot reload of model-only changes
            source: tuple[str, ...] = (w["repo"],)
            visible: Path = Path(w["repo"])
        else:  # recorded before repositories: the bundle's model file
            source = (str(bundle_dir / w["model_path"]), "--model-name", w["model_name"])
            visible = bundle_dir
        argv = (
            *self.config.serve_command,
            *source,
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
                ro=(visible, *own_installation()),
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

    def _wait_healthy(
        self, name: str, dep: str, *, ready: Callable[[], bool] | None = None, restarts: int | None = None
    ) -> Health:
        """Ready within ``--ready-timeout`` (``ready``: an extra check, e.g. the new model version),
        then ``--health-window`` seconds still ready with no restart."""
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
                if st.ready and (ready is None or ready()):
                    ready_at, restarts0 = now, st.restarts if restarts is None else restarts
                    self._step(dep, "health_window")
                elif now - t0 > self.config.ready_timeout_s:
                    return Health(
                        False,
                        f"readiness: not ready within {self.config.ready_timeout_s:g}s "
                        f"({st.restarts} restarts{exit_txt})",
                    )
            else:
                if (
                    st.restarts > restarts0
                    or st.state != "running"
                    or st.ready is False
                    or (ready is not None and not ready())
                ):
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
            "at": now_iso(),
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
        """The update waits for space (the old version serves); False: try again at the next poll."""
        self.phase[dep] = "waiting for disk space"
        self.last_error = f"{exc.message} [{exc.code}]"
        log.warning("update waits for disk space", extra={"deployment": dep, "reason": exc.message})
        return False

    def _step(self, dep: str, step: str) -> None:
        """Enter one step of an update (shown in the status); a configured failpoint SIGKILLs here."""
        self.phase[dep] = step
        if self.config.failpoint == step:
            log.warning("failpoint: SIGKILL", extra={"deployment": dep, "step": step})
            os.kill(os.getpid(), signal.SIGKILL)

    def _fetch(self, dep: str, w: dict[str, Any]) -> dict[str, Any]:
        """Download, verify (TUF when the server hosts it) and unpack the bundle; its manifest
        (with ``manifest_sha256``, the digest of ``bundle.json``)."""
        assert self.client is not None  # noqa: S101 - enrolled before any update
        bundle = w["bundle"]
        sha = bundle["sha256"]
        manifest_path = self._bundle_dir(sha) / "bundle.json"
        waiting = self.deferred.get(dep, {}).get("release") == w["release"]  # checked when it was fetched
        if manifest_path.is_file() and not waiting:  # installed earlier: check it was not damaged since
            self._drop_if_damaged(sha, dep)
        if not manifest_path.is_file():
            tar = self.dir / "downloads" / f"{sha}.tar"
            fail_mid = self.config.failpoint == "downloading"  # SIGKILL after the first bytes are on disk
            self.phase[dep] = "downloading"
            self.client.download(
                bundle["url"],
                tar,
                sha256=sha,
                size=int(bundle["size"]),
                on_chunk=(lambda _n: self._step(dep, "downloading")) if fail_mid else None,
            )
            self.phase[dep] = "verifying"  # and unpacking, in the child (its own failpoints)
            result = self._install(tar, sha, str(bundle.get("name")), str(bundle.get("version")))
            if result.get("tuf"):
                self.outbox.put("bundle_verified", deployment=dep, release=w["release"], **result["tuf"])
            tar.unlink(missing_ok=True)
        data = manifest_path.read_bytes()
        manifest: dict[str, Any] = json.loads(data)
        manifest["manifest_sha256"] = hashlib.sha256(data).hexdigest()  # recorded with the workload
        return manifest

    def _deferral(self, w: dict[str, Any]) -> dict[str, Any] | None:
        """Why an update of a running workload must wait now (operator lock, maintenance window)."""
        lock: dict[str, Any] | None = self.state.get("lock")
        if lock is not None and lock_active(lock):
            return {"by": "lock", **lock, "reason": f"update lock held by {lock['holder']}: {lock['reason']}"}
        if lock:
            self.state["lock"] = None  # expired
            self._save()
        holder = file_lock_holder(self.lock_path)
        if holder is not None:
            return {"by": "lock_file", "reason": f"update lock: {holder}"}
        spec = w.get("maintenance")
        if spec:
            from edgefleet.maintenance import parse_schedule

            try:
                sched = parse_schedule(spec, "maintenance")
            except EdgefleetError as exc:
                return {"by": "window", "reason": f"maintenance windows do not parse: {exc.message}"}
            now = datetime.now(UTC)
            if not sched.is_open(now):
                nxt = sched.next_open(now)
                at = nxt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if nxt else None
                return {
                    "by": "window",
                    "reason": f"outside the maintenance windows {sched.describe()}"
                    + (f"; next opens {nxt.isoformat(timespec='minutes')}" if nxt else ""),
                    "next_window": at,
                }
        return None

    def _defer(self, dep: str, w: dict[str, Any], why: dict[str, Any]) -> None:
        first = self.deferred.get(dep, {}).get("reason") != why["reason"]
        self.deferred[dep] = {"release": w["release"], "version": w["bundle"].get("version"), **why}
        self.phase.pop(dep, None)
        if first:
            log.info("update deferred", extra={"deployment": dep, "reason": why["reason"]})
            self.outbox.put("update_deferred", deployment=dep, release=w["release"], reason=why["reason"])
            self._report_now.set()

    def _fetched(self, dep: str, w: dict[str, Any]) -> dict[str, Any] | bool:
        """The bundle's manifest once it is in the store; else what :meth:`_update` returns now:
        False to try again later (server away, disk full), True when the bundle is refused."""
        try:
            return self._fetch(dep, w)
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

    def _update(self, w: dict[str, Any]) -> bool:
        """Bring one deployment to ``w``; False when it must be retried later (server away, deferred,
        disk full)."""
        assert self.supervisor is not None  # noqa: S101
        dep, bundle = w["deployment"], w["bundle"]
        sha = bundle["sha256"]
        manifest = self._fetched(dep, w)
        if isinstance(manifest, bool):
            return manifest
        old = self.state["workloads"].get(dep)
        model_name = str(manifest["name"])
        model_path = str(manifest["model"]["path"])
        config = {
            "resources": w.get("resources") or {},
            "serving": w.get("serving") or {},
            "pipeline": w.get("pipeline") or {},
            "model_name": model_name,
            "model_file": model_file(model_path),
            "execution_providers": manifest.get("execution_providers") or [],
        }
        entry = {
            "deployment": dep,
            "release": w["release"],
            "release_number": w.get("release_number"),
            "version": bundle.get("version"),
            "bundle_name": bundle.get("name"),
            "sha256": sha,
            "manifest_sha256": manifest["manifest_sha256"],
            "model_path": model_path,
            "model_name": model_name,
            "resources": w.get("resources") or {},
            "serving": w.get("serving") or {},
            "config": config,
            "since": now_iso(),
        }
        same_config = bool(old and old.get("repo") and old.get("config") == config)
        try:
            if same_config and old and old["sha256"] == sha:  # only the release changed: nothing to restart
                self._switch(dep, old | {k: entry[k] for k in ("release", "release_number", "since")}, old, w)
                return True
            if old is not None:
                why = self._deferral(w)
                if why is not None:
                    self._defer(dep, w, why)
                    return False
            self.deferred.pop(dep, None)
            if same_config and old is not None:
                return self._hot_reload(dep, w, old, entry)
            return self._blue_green(dep, w, old, entry)
        except AgentStorageError as exc:  # not switched: the old version serves, on disk and here
            return self._wait_for_storage(dep, exc)

    def _blue_green(
        self, dep: str, w: dict[str, Any], old: dict[str, Any] | None, entry: dict[str, Any]
    ) -> bool:
        """A new sandbox on new ports beside the old one; the endpoint moves once it is healthy."""
        assert self.supervisor is not None  # noqa: S101
        name = f"{self.config.workload_prefix}-{dep}-{w['release']}"[:100]
        repo = self.dir / "models" / name
        entry |= {
            "name": name,
            "repo": str(repo),
            "model_version": 1,
            "http_port": free_port(),
            "grpc_port": free_port(),
        }
        self._step(dep, "staging")
        shutil.rmtree(repo, ignore_errors=True)
        try:
            stage(
                repo,
                entry["model_name"],
                1,
                self._bundle_dir(entry["sha256"]) / entry["model_path"],
                entry["config"]["model_file"],
            )
        except OSError as exc:
            shutil.rmtree(repo, ignore_errors=True)
            raise storage_error(repo, exc, "stage the model") from exc
        with contextlib.suppress(EdgefleetError):
            self.supervisor.remove(name, grace_s=1.0)
        try:
            self.supervisor.add(self._workload(entry))
        except OSError as exc:  # the supervisor's own files (a full disk): not the release's fault
            with contextlib.suppress(EdgefleetError, OSError):
                self.supervisor.remove(name, grace_s=1.0)
            shutil.rmtree(repo, ignore_errors=True)
            raise storage_error(self.dir / "supervisor", exc, "start") from exc
        except EdgefleetError as exc:
            self.phase.pop(dep, None)
            shutil.rmtree(repo, ignore_errors=True)
            self._fail(dep, w, "rolled_back", f"start: {exc.message} [{exc.code}]")
            return True
        self._step(dep, "starting")
        health = self._wait_healthy(name, dep)
        if not health.ok:
            self.phase.pop(dep, None)
            with contextlib.suppress(EdgefleetError):
                self.supervisor.remove(name, grace_s=2.0)
            shutil.rmtree(repo, ignore_errors=True)
            self._fail(dep, w, "rolled_back", health.reason)
            return True
        try:
            self._switch(dep, entry, old, w)
        except AgentStorageError:  # not switched: the endpoint goes back, the new workload goes
            if old is not None:
                self._open_endpoint(dep, old)
            else:
                self._close_endpoint(dep)
            with contextlib.suppress(EdgefleetError):
                self.supervisor.remove(name, grace_s=2.0)
            shutil.rmtree(repo, ignore_errors=True)
            raise
        return True

    def _hot_reload(self, dep: str, w: dict[str, Any], old: dict[str, Any], entry: dict[str, Any]) -> bool:
        """The new model as version n+1 of the running serve's repository, swapped in by serve."""
        assert self.supervisor is not None  # noqa: S101
        repo, model, port = Path(old["repo"]), old["model_name"], int(old["http_port"])
        version = int(old["model_version"]) + 1
        entry |= {k: old[k] for k in ("name", "repo", "http_port", "grpc_port")} | {"model_version": version}
        self._step(dep, "staging")
        try:
            stage(
                repo,
                model,
                version,
                self._bundle_dir(entry["sha256"]) / entry["model_path"],
                entry["config"]["model_file"],
            )
        except OSError as exc:
            prune(repo, model, {int(old["model_version"])})
            raise storage_error(repo, exc, "stage the model") from exc
        restarts = self.supervisor.status(old["name"]).restarts
        self._step(dep, "reloading")
        try:
            reload_model(port, model)
            health = self._wait_healthy(
                old["name"], dep, ready=lambda: version_ready(port, model, version), restarts=restarts
            )
        except AgentVerificationError as exc:
            health = Health(False, exc.message)
        if not health.ok:
            self.phase.pop(dep, None)
            prune(repo, model, {int(old["model_version"])})
            with contextlib.suppress(AgentVerificationError):
                reload_model(port, model)  # the old version again, if serve had let it go
            self._fail(dep, w, "rolled_back", health.reason)
            return True
        try:
            self._switch(dep, entry, old, w, hot=True)
        except AgentStorageError:  # not switched: serve goes back to the recorded version
            prune(repo, model, {int(old["model_version"])})
            with contextlib.suppress(AgentVerificationError):
                reload_model(port, model)
            raise
        return True

    def _switch(
        self,
        dep: str,
        entry: dict[str, Any],
        old: dict[str, Any] | None,
        w: dict[str, Any],
        *,
        hot: bool = False,
    ) -> None:
        """The endpoint moves, the switch is one atomic write of ``state.json``, then the old one goes.

        When that write fails (:class:`AgentStorageError`, raised), memory is put back too: the old
        version stays recorded; the caller moves the endpoint back and undoes what it started.
        """
        assert self.supervisor is not None  # noqa: S101
        self._open_endpoint(dep, entry)  # new requests go to the new workload from here on
        with self._lock:
            before = {k: self.state[k].get(dep) for k in ("workloads", "previous", "failed")}
            if old and old["sha256"] != entry["sha256"]:
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
        self.deferred.pop(dep, None)
        self._step(dep, "switching")
        if old and old["name"] != entry["name"]:
            ep = self.endpoints.get(dep)
            if ep is not None:
                ep.drain(int(old["http_port"]), timeout=30.0)
            with contextlib.suppress(EdgefleetError):
                self.supervisor.remove(old["name"])
            self._step(dep, "cleanup")
            if old.get("repo"):
                shutil.rmtree(old["repo"], ignore_errors=True)
        elif hot:
            self._step(dep, "cleanup")
            prune(Path(entry["repo"]), entry["model_name"], {int(entry["model_version"])})
        self.phase.pop(dep, None)
        if old and old["release"] == entry["release"]:
            return
        if old is None or old["sha256"] != entry["sha256"]:
            self.updates["ok"] += 1
        self.outbox.put(
            "updated",
            deployment=dep,
            release=w["release"],
            version=w["bundle"].get("version"),
            previous=old["version"] if old else None,
            how="hot_reload"
            if hot
            else ("release_only" if old and old["sha256"] == entry["sha256"] else "blue_green"),
        )
        log.info("updated", extra={"deployment": dep, "release": w["release"], "hot_reload": hot})


def own_installation() -> tuple[Path, ...]:
    """Where this Python and edgefleet live, when the sandbox's private /tmp would hide them.

    The workload runs this installation's ``edgefleet serve``; an installation under /tmp (a
    virtualenv in a checkout there, say) must be bound back into the sandbox, read-only.
    """
    import edgefleet

    tmp = Path("/tmp")  # noqa: S108 - the path the sandbox mounts its own tmpfs over
    candidates = {Path(sys.prefix), Path(edgefleet.__file__).resolve().parent.parent}
    return tuple(sorted(p for p in candidates if p.is_relative_to(tmp) and p.is_dir()))
