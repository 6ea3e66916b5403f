"""A real `edgefleet server` process, bundles of tiny ONNX models, and agent processes."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgefleet.testing.require import require

PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_model(path: Path, *, scale: float = 2.0) -> Path:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    k = helper.make_tensor("k", TensorProto.FLOAT, [1], [scale])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "k"], ["y"])], "scale", [x], [y], [k])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def make_bundle(tmp: Path, name: str, version: str, *, scale: float = 2.0, broken: bool = False) -> Path:
    from edgefleet.bundle.build import BuildOptions, build_bundle

    src = tmp / f"src-{name}-{version}"
    src.mkdir()
    model = make_model(src / "model.onnx", scale=scale)
    opts = BuildOptions(name=name, version=version, created=datetime(2026, 1, 1, tzinfo=UTC))
    if broken:  # a model the runtime refuses: bundle.json was made from the good one
        from edgefleet.bundle.build import _collect, build_manifest, write_bundle_tar

        manifest = build_manifest(_collect(model), opts)
        model.write_bytes(b"\x08\x07garbage, not an onnx graph")
        import hashlib

        entry = manifest.files[0].model_copy(
            update={"sha256": hashlib.sha256(model.read_bytes()).hexdigest(), "size": model.stat().st_size}
        )
        manifest = manifest.model_copy(update={"files": [entry]})
        out = tmp / f"{name}-{version}.tar"
        with out.open("wb") as f:
            write_bundle_tar(f, manifest, {entry.path: model})
        return out
    return build_bundle(model, tmp / f"{name}-{version}.tar", opts).path


class Server:
    """`edgefleet server run` with its default TLS (a CA made in the data directory)."""

    def __init__(self, data: Path, port: int | None = None, *, extra: tuple[str, ...] = ()) -> None:
        self.data = data
        self.extra = extra
        self.port = port or free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.log = data / "server.log"
        self.ca = data / "tls" / "ca.pem"
        self.p: subprocess.Popen[bytes] | None = None

    def verify(self) -> ssl.SSLContext:
        """A client context that trusts only this server's CA."""
        return ssl.create_default_context(cafile=str(self.ca))

    @property
    def fingerprint(self) -> str:
        """The CA's SHA-256 as the server printed it at start."""
        m = re.findall(r"TLS CA SHA-256 fingerprint: ([0-9A-F:]{95})", self.log.read_text())
        assert m, self.log.read_text()
        return str(m[-1])

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.p = subprocess.Popen(
                [
                    PY,
                    "-m",
                    "edgefleet",
                    "server",
                    "run",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data),
                    *self.extra,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                if (
                    self.ca.exists()
                    and httpx.get(self.url + "/healthz", timeout=2, verify=self.verify()).status_code == 200
                ):
                    return
            except (httpx.HTTPError, ssl.SSLError):
                pass
            if self.p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {self.log.read_text()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.p is not None and self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.p = None


class Fleet:
    """The server plus an admin API client on its default project."""

    def __init__(self, tmp: Path, *server_args: str, tuf: bool = False) -> None:
        self.tmp = tmp
        data = tmp / "server"
        data.mkdir()
        extra: tuple[str, ...] = ()
        self.keys: Path | None = None
        if tuf:  # a TUF repository of the bundles; the server holds the (plaintext) targets key
            self.keys = tmp / "keys"
            r = subprocess.run(
                [PY, "-m", "edgefleet", "keys", "init", str(self.keys), "--insecure-plaintext"],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert r.returncode == 0, r.stderr
            extra = ("--tuf-keys", str(self.keys))
        r = subprocess.run(
            [PY, "-m", "edgefleet", "server", "migrate", "--data-dir", str(data)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert r.returncode == 0, r.stderr
        self.server = Server(data, extra=(*server_args, *extra))
        self.server.start()
        token = re.search(r"(efk_\S+)", self.server.log.read_text())
        assert token, self.server.log.read_text()
        self.token = token.group(1)

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url + "/api/v1/projects/default",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
            verify=self.server.verify(),
        )

    def join_token(self) -> str:
        with self.api() as api:
            r = api.post("/join-tokens", json={"name": "agent", "max_uses": None})
            assert r.status_code == 201, r.text
            return str(r.json()["token"])

    def upload(self, tar: Path) -> None:
        with self.api() as api:
            r = api.post("/bundles", files={"file": (tar.name, tar.read_bytes())})
            assert r.status_code == 201, r.text

    def deploy(self, name: str, version: str, **extra: Any) -> dict[str, Any]:
        body = {
            "name": name,
            "bundle": {"name": name, "version": version},
            "selector": "",
            "strategy": {"waves": [{"percent": 100}], "bake_seconds": 0},
        } | extra
        end = time.monotonic() + 60
        with self.api() as api:
            while True:  # the previous rollout completes within a driver pass or two
                r = api.post("/deployments", json=body)
                if r.status_code != 409 or time.monotonic() > end:
                    break
                time.sleep(0.5)
            assert r.status_code in (200, 201), r.text
            return dict(r.json())

    def device(self, device_id: str) -> dict[str, Any]:
        with self.api() as api:
            return dict(api.get(f"/devices/{device_id}").json())

    def events(self, device_id: str) -> list[dict[str, Any]]:
        with self.api() as api:
            data = api.get(f"/devices/{device_id}/events").json()
            return list(data["items"] if isinstance(data, dict) else data)


class AgentProc:
    def __init__(self, state: Path, fleet: Fleet, *, join: str | None, prefix: str) -> None:
        self.state, self.fleet, self.join, self.prefix = state, fleet, join, prefix
        self.p: subprocess.Popen[bytes] | None = None
        self.log = state.parent / f"{state.name}.log"

    def start(self, *extra: str, cli: bool = False) -> None:
        entry = ["edgefleet", "agent"] if cli else ["edgefleet.agent"]  # the CLI execs the module
        args = [
            PY,
            "-m",
            *entry,
            "run",
            "--state-dir",
            str(self.state),
            "--server",
            self.fleet.server.url,
            *(
                ("--ca-fingerprint", self.fleet.server.fingerprint)
                if self.fleet.server.url.startswith("https:")
                else ()
            ),
            "--poll-wait",
            "2",
            "--backoff-max",
            "2",
            "--report-interval",
            "1",
            "--ready-timeout",
            "60",
            "--health-window",
            "2",
            "--workload-prefix",
            self.prefix,
            "--cgroup-parent",
            self.prefix,
            "--workload-user",
            "0",
            "--no-tuning",
            *extra,
        ]
        if self.join:
            args += ["--join-token", self.join]
        with self.log.open("ab") as out:
            self.p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)

    def status(self) -> dict[str, Any]:
        from edgefleet.agent.local import query_status

        return query_status(self.state / "agent.sock")

    def wait(self, pred: Any, timeout: float = 90.0, what: str = "") -> dict[str, Any]:
        end = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < end:
            if self.p is not None and self.p.poll() is not None:
                raise AssertionError(f"agent exited {self.p.returncode}: {self.log.read_text()[-3000:]}")
            try:
                last = self.status()
                if pred(last):
                    return last
            except Exception:  # noqa: BLE001, S110 - not listening yet
                pass
            time.sleep(0.3)
        raise AssertionError(
            f"timed out waiting for {what}: {json.dumps(last)[:2000]}\n{self.log.read_text()[-3000:]}"
        )

    def kill(self) -> None:
        if self.p is not None and self.p.poll() is None:
            self.p.send_signal(signal.SIGKILL)
            self.p.wait(timeout=30)

    def stop(self) -> None:
        if self.p is not None and self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def workload_of(status: dict[str, Any], dep: str) -> dict[str, Any] | None:
    for w in status["workloads"]:
        if w["deployment"] == dep:
            return dict(w)
    return None


def serving(status: dict[str, Any], dep: str, version: str) -> bool:
    w = workload_of(status, dep)
    return bool(w and w["version"] == version and w.get("ready"))


def infer(port: int, value: float = 1.0) -> list[float]:
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [value] * 4}]}
    r = httpx.post(f"http://127.0.0.1:{port}/v2/models/det/infer", json=body, timeout=10)
    r.raise_for_status()
    return list(r.json()["outputs"][0]["data"])


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    require(os.geteuid() == 0, "root (the sandbox needs it)")
    f = Fleet(tmp_path)
    try:
        yield f
    finally:
        f.server.stop()


@pytest.fixture
def tuf_fleet(tmp_path: Path) -> Iterator[Fleet]:
    """A server that hosts a TUF repository of its bundles (devices verify every bundle with it)."""
    require(os.geteuid() == 0, "root (the sandbox needs it)")
    f = Fleet(tmp_path, tuf=True)
    try:
        yield f
    finally:
        f.server.stop()


@pytest.fixture
def agents() -> Iterator[list[AgentProc]]:
    made: list[AgentProc] = []
    yield made
    for a in made:
        a.stop()
    # workloads are left running by design when the agent stops: remove them here
    from edgefleet.sandbox.supervisor import Supervisor

    for a in made:
        sup_dir = a.state / "supervisor"
        if sup_dir.exists():
            sup = Supervisor(sup_dir, parent=a.prefix)
            for st in sup.statuses():
                sup.remove(st.name, grace_s=2.0)
            sup.close()


def new_agent(tmp: Path, fleet: Fleet, agents: list[AgentProc], join: str | None = None) -> AgentProc:
    prefix = "efa" + uuid.uuid4().hex[:8]
    a = AgentProc(tmp / f"agent-{prefix}", fleet, join=join or fleet.join_token(), prefix=prefix)
    agents.append(a)
    return a
