"""A fleet simulator: N virtual devices that speak the real device API of ``edgefleet server``.

Each device has its own ed25519 key, enrolls with a join token, polls its desired state with an
ETag (with jitter), checks the server's signature, "applies" the workloads and reports health.
A configurable fraction of devices fails (reports ``failed`` with crash loops), and any release of
a bundle version listed in ``bad_versions`` fails on every device: that is how tests make a bad
bundle trip a rollout gate.

    sim = FleetSimulator(SimulatorConfig(server="http://127.0.0.1:8470", join_token=t, devices=100))
    asyncio.run(sim.run(duration=60))

Used by the server's scenario tests, `edgefleet simulate` and the scale benchmark.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgefleet.errors import EdgefleetError, InvalidInputError, OperationFailedError

__all__ = ["FleetSimulator", "SimStats", "SimulatorConfig", "VirtualDevice"]


@dataclass(frozen=True)
class SimulatorConfig:
    server: str
    join_token: str
    devices: int = 10
    fail_fraction: float = 0.0
    bad_versions: frozenset[str] = frozenset()
    poll_interval: float = 60.0
    jitter: float = 0.2
    long_poll_wait: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)
    report_every: int = 5
    max_connections: int = 200
    enroll_concurrency: int = 20
    seed: int = 0
    p95_latency_ms: float = 12.0
    ca_cert: str | None = None  # CA (PEM) to verify an https server with
    state_file: str | None = None  # identities kept here (0600) and reused: a restart enrolls nobody


@dataclass
class SimStats:
    polls: int = 0
    not_modified: int = 0
    changed: int = 0
    errors: int = 0
    reports: int = 0
    latencies: list[float] = field(default_factory=list)
    last_error: str = ""

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(q * len(data)))]


class VirtualDevice:
    """One simulated device; all network I/O goes through the client handed in."""

    def __init__(self, index: int, config: SimulatorConfig, *, failing: bool) -> None:
        self.index = index
        self.config = config
        self.failing = failing
        self.key = Ed25519PrivateKey.generate()
        self.device_id: str | None = None
        self.server_key: bytes | None = None
        self.etag: str | None = None
        self.revision = 0
        self.workloads: list[dict[str, Any]] = []
        self.seq = 0
        self.polls_since_report = 0
        self.report_pending = False

    def identity(self) -> dict[str, Any]:
        """What a restart needs to be this device again (the private key included)."""
        raw = self.key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return {
            "index": self.index,
            "device_id": self.device_id,
            "key": base64.b64encode(raw).decode(),
            "server_key": base64.b64encode(self.server_key or b"").decode(),
        }

    def restore(self, saved: dict[str, Any]) -> None:
        """Become the device ``saved`` (from :meth:`identity`) describes."""
        self.key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(saved["key"]))
        self.device_id = saved["device_id"]
        self.server_key = base64.b64decode(saved["server_key"])

    @property
    def public_b64(self) -> str:
        raw = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    async def enroll(self, client: httpx.AsyncClient) -> str:
        body = {
            "join_token": self.config.join_token,
            "public_key": self.public_b64,
            "name": f"sim-{self.index:06d}",
            "labels": self.config.labels,
            "inventory": {"arch": "x86_64", "simulated": True, "index": self.index},
        }
        for attempt in range(5):
            try:
                r = await client.post("/device/v1/enroll", json=body)
                break
            except (
                httpx.TransportError
            ) as exc:  # a dropped keep-alive connection: try again, like an agent would
                from edgefleet.server.tls import tls_error

                if (tls := tls_error(exc, self.config.server)) is not None:
                    raise tls from exc
                if attempt == 4:
                    raise
                await asyncio.sleep(0.5 * (attempt + 1))
        if r.status_code != 201:
            raise OperationFailedError(
                f"enroll failed: {r.status_code} {r.text}", code="simulate.enroll_failed"
            )
        data = r.json()
        self.device_id = data["device_id"]
        self.server_key = base64.b64decode(data["server_public_key"])
        return str(self.device_id)

    def _signed(self, method: str, target: str, body: bytes = b"") -> dict[str, str]:
        from edgefleet.server.auth import sign_request

        assert self.device_id is not None  # noqa: S101 - enroll() runs first
        return sign_request(self.key, self.device_id, method, target, body)

    async def poll(self, client: httpx.AsyncClient, wait: float = 0.0) -> tuple[bool, float]:
        """One desired-state poll; returns ``(changed, seconds)``; applies and reports on a change."""
        from edgefleet.server.keys import verify_document

        target = "/device/v1/desired-state" + (f"?wait={wait:g}" if wait else "")
        headers = self._signed("GET", target)
        if self.etag:
            headers["If-None-Match"] = self.etag
        t0 = time.perf_counter()
        r = await client.get(target, headers=headers, timeout=wait + 30)
        elapsed = time.perf_counter() - t0
        self.polls_since_report += 1
        if r.status_code == 304:
            due = self.polls_since_report >= self.config.report_every and self.workloads
            if due or self.report_pending:
                await self.report(client)
            return False, elapsed
        if r.status_code != 200:
            raise OperationFailedError(f"poll failed: {r.status_code} {r.text}", code="simulate.poll_failed")
        envelope = r.json()
        self.etag = r.headers.get("ETag")
        if envelope.get("signed") is not None:
            assert self.server_key is not None  # noqa: S101 - set by enroll()
            signed = verify_document(envelope, self.server_key)
            self.revision = int(signed["revision"])
            self.workloads = list(signed["workloads"])
        self.report_pending = True  # until the server has it: a failed report is retried on the next poll
        await self.report(client)
        return True, elapsed

    def health(self) -> dict[str, Any]:
        out = []
        for w in self.workloads:
            bad = self.failing or w["bundle"]["version"] in self.config.bad_versions
            out.append(
                {
                    "deployment": w["deployment"],
                    "release": w["release"],
                    "status": "failed" if bad else "running",
                    "ready": not bad,
                    "crash_loops": 3 if bad else 0,
                    "error_rate": 0.5 if bad else 0.0,
                    "p95_latency_ms": self.config.p95_latency_ms,
                }
            )
        return {"workloads": out}

    async def report(self, client: httpx.AsyncClient) -> None:
        self.seq += 1
        self.polls_since_report = 0
        body = json.dumps(
            {
                "seq": self.seq,
                "revision": self.revision,
                "state": {
                    "workloads": [
                        {"release": w["release"], "bundle": w["bundle"]["version"]} for w in self.workloads
                    ]
                },
                "health": self.health(),
            }
        ).encode()
        headers = self._signed("POST", "/device/v1/report", body)
        headers["Content-Type"] = "application/json"
        r = await client.post("/device/v1/report", content=body, headers=headers)
        if r.status_code != 200:
            raise OperationFailedError(
                f"report failed: {r.status_code} {r.text}", code="simulate.report_failed"
            )

    def running_version(self, deployment: str) -> str | None:
        for w in self.workloads:
            if w["deployment"] == deployment:
                return str(w["bundle"]["version"])
        return None


class FleetSimulator:
    """N virtual devices on one event loop and one HTTP connection pool."""

    def __init__(
        self,
        config: SimulatorConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.rng = random.Random(config.seed)  # noqa: S311 - jitter, not security
        n_fail = round(config.devices * config.fail_fraction)
        failing = set(self.rng.sample(range(config.devices), n_fail)) if n_fail else set()
        self.devices = [VirtualDevice(i, config, failing=i in failing) for i in range(config.devices)]
        self.stats = SimStats()
        self._transport = transport
        self._clock = clock
        self._client: httpx.AsyncClient | None = None
        self._inflight: asyncio.Semaphore | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            limits = httpx.Limits(
                max_connections=self.config.max_connections,
                max_keepalive_connections=self.config.max_connections,
                keepalive_expiry=50,  # below the server's keep-alive timeout (75 s)
            )
            from edgefleet.server.tls import client_ssl_context

            https = self.config.server.startswith("https:")
            self._client = httpx.AsyncClient(
                base_url=self.config.server,
                limits=limits,
                transport=self._transport,
                timeout=30,
                verify=client_ssl_context(self.config.ca_cert) if https else True,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def enroll_all(self, devices: list[VirtualDevice] | None = None) -> None:
        self._load_identities()
        todo = [d for d in (devices or self.devices) if d.device_id is None]
        sem = asyncio.Semaphore(self.config.enroll_concurrency)

        async def one(d: VirtualDevice) -> None:
            async with sem:
                await d.enroll(self.client())

        try:
            await asyncio.gather(*(one(d) for d in todo))
        finally:
            if todo:
                self._save_identities()

    def _load_identities(self) -> None:
        if not self.config.state_file:
            return
        path = Path(self.config.state_file)
        try:
            saved = json.loads(path.read_text()) if path.exists() else {}
            by_index = {int(d["index"]): d for d in saved.get("devices", [])}
            if saved and saved.get("server") != self.config.server:
                by_index = {}  # another server: these identities mean nothing there
            for d in self.devices:
                if d.device_id is None and d.index in by_index:
                    d.restore(by_index[d.index])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InvalidInputError(
                f"simulator state {path}: cannot read it ({exc}); remove it to enroll new devices",
                code="simulate.state_invalid",
                field="state_file",
            ) from exc

    def _save_identities(self) -> None:
        if not self.config.state_file:
            return
        path = Path(self.config.state_file)
        data = {
            "server": self.config.server,
            "devices": [d.identity() for d in self.devices if d.device_id is not None],
        }
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)

    def add_devices(self, n: int, *, failing: bool = False) -> list[VirtualDevice]:
        start = len(self.devices)
        new = [VirtualDevice(start + i, self.config, failing=failing) for i in range(n)]
        self.devices.extend(new)
        return new

    async def poll_all(self) -> None:
        """Every device polls once, concurrently (a tick of a test)."""
        await asyncio.gather(*(self._poll(d, 0.0) for d in self.devices if d.device_id))

    async def _poll(self, d: VirtualDevice, wait: float) -> None:
        # Queue here (FIFO, cheap) rather than in the HTTP pool, whose waiters are costly by the thousand.
        if self._inflight is None:
            self._inflight = asyncio.Semaphore(self.config.max_connections)
        try:
            async with self._inflight:
                changed, elapsed = await d.poll(self.client(), wait)
        except (httpx.HTTPError, EdgefleetError, ValueError, KeyError) as exc:
            # a device that fails a poll counts it and tries again next time, like a real agent
            self.stats.errors += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"[:300]
            return
        self.stats.polls += 1
        self.stats.latencies.append(elapsed)
        if changed:
            self.stats.changed += 1
        else:
            self.stats.not_modified += 1

    async def run(self, duration: float) -> SimStats:
        """Enroll whoever has not, then poll with jitter for ``duration`` seconds."""
        await self.enroll_all()
        end = self._clock() + duration

        async def device_loop(d: VirtualDevice) -> None:
            await asyncio.sleep(min(duration, self.rng.uniform(0, self.config.poll_interval)))
            while self._clock() < end:
                await self._poll(d, self.config.long_poll_wait)
                spread = self.config.poll_interval * self.config.jitter
                pause = self.config.poll_interval + self.rng.uniform(-spread, spread)
                await asyncio.sleep(max(0.0, min(pause, end - self._clock())))

        tasks = [asyncio.create_task(device_loop(d)) for d in self.devices]
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=duration + self.config.poll_interval + 60)
        except TimeoutError:
            pass
        finally:
            for t in tasks:
                t.cancel()
        return self.stats

    def versions(self, deployment: str) -> dict[str, str | None]:
        return {str(d.device_id): d.running_version(deployment) for d in self.devices if d.device_id}
