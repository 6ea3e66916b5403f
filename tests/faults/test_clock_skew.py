"""Clock skew between a device and what signs for it: expired metadata is refused with a clear reason,
and things recover once the clocks agree.

Two places check expiry today: the TUF client of the bundle library (``BundleClient``: root,
timestamp, snapshot and targets expiry) and the agent (the signed desired state's ``expires_at``).
Each has its test here; when the agent verifies bundles with ``BundleClient`` on the device, the
agent trial's update goes through that check as well.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edgefleet.bundle.errors import BundleError
from edgefleet.bundle.keys import ONLINE_ROLES
from edgefleet.bundle.repository import Repository
from edgefleet.server import ServerSettings, open_server
from edgefleet.server.api import create_app
from edgefleet.server.auth import SKEW_SECONDS
from edgefleet.server.service import migrate
from edgefleet.server.tls import ServerTls, ensure_auto_tls
from edgefleet.testing.faults import Trials, trial_count
from tests.integration.agent.conftest import (
    AgentProc,
    Fleet,
    infer,
    make_bundle,
    new_agent,
    serving,
    workload_of,
)
from tests.integration.bundle.conftest import World, serve, world
from tests.integration.server.conftest import serve_in_thread

__all__ = ["serve", "world"]

pytestmark = pytest.mark.integration

TIMESTAMP_LIFETIME = timedelta(days=1)  # the repository's default ExpiryPolicy.timestamp
TTL = 120.0  # the desired-state lifetime the agent trials run with


N_TUF = trial_count(quick=4, full=60)
N_AGENT = trial_count(quick=2, full=12)


@pytest.mark.timeout(120 + 10 * N_TUF)
def test_clock_skew_tuf_metadata_expiry(world: World) -> None:
    n = N_TUF
    notes = (
        "a TUF repository whose signing clock lags the device's by a random 0-3 days (the device's clock "
        "is ahead), timestamp and snapshot signed again under that clock, then a fresh device fetches a "
        "bundle with the bundle library's TUF client. Checked: beyond the timestamp's 1-day lifetime "
        "the fetch is refused as bundle.expired with a reason naming the expired role and nothing is "
        "installed; within it, the bundle is verified and installed."
    )
    with Trials("clock skew: TUF metadata expiry on the device", planned=n, notes=notes) as trials:
        for i in range(n):
            with trials.trial() as t:
                skew = timedelta(seconds=trials.rng.uniform(0, 3 * 86400))
                if abs(skew - TIMESTAMP_LIFETIME) < timedelta(minutes=10):
                    skew += timedelta(minutes=20)  # not on the boundary: the test's own seconds count
                signed_at = datetime.now(UTC) - skew
                Repository(world.repo.path, clock=lambda at=signed_at: at).refresh(
                    {r: world.keys.signers(r, None) for r in ONLINE_ROLES}, force=True
                )
                client = world.client(f"device-{i}")
                t.measure("skew_hours", skew.total_seconds() / 3600)
                if skew > TIMESTAMP_LIFETIME:
                    with pytest.raises(BundleError) as err:
                        client.fetch("relu", "1.0.0")
                    assert err.value.code == "bundle.expired", err.value
                    assert "expired" in err.value.message
                    assert "timestamp" in err.value.message
                    assert client.store.digests() == []
                    t.outcome = (
                        "device clock ahead by more than the timestamp lifetime: refused [bundle.expired]"
                    )
                else:
                    installed = client.fetch("relu", "1.0.0")
                    assert client.store.has(installed.sha256)
                    t.outcome = "skew within the timestamp lifetime: verified and installed"


def _rollout_done(fleet: Fleet, timeout: float = 90.0) -> None:
    """Wait until the last rollout is over (the next deploy would be refused while it runs)."""
    end = time.monotonic() + timeout
    while True:
        with fleet.api() as api:
            ro = api.get("/rollouts", params={"limit": 1}).json()["items"][0]
        if ro["phase"] in ("completed", "aborted") or time.monotonic() > end:
            break
        time.sleep(0.5)
    assert ro["phase"] in ("completed", "aborted"), ro


class SkewedClock:
    """The server's clock: real time minus ``behind`` seconds."""

    def __init__(self) -> None:
        self.behind = 0.0

    def __call__(self) -> float:
        return time.time() - self.behind


class InProcessServer:
    """What :class:`Fleet` and the agents use of a server: its URL, data, and TLS CA (default TLS)."""

    def __init__(self, url: str, data: Path, tls: ServerTls) -> None:
        assert tls.ca is not None
        self.url, self.data, self.ca, self.fingerprint = url, data, tls.ca, tls.fingerprint

    def verify(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


class InProcessFleet(Fleet):
    """:class:`Fleet`'s API helpers over a server running in this process, on a clock the test sets."""

    def __init__(self, tmp: Path, server: InProcessServer, token: str, clock: SkewedClock) -> None:
        self.tmp, self.token, self.clock = tmp, token, clock
        self.server = server  # type: ignore[assignment]


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[InProcessFleet]:
    tls = ensure_auto_tls(tmp_path / "server")  # the server's default TLS, as `server run` makes it
    settings = ServerSettings(
        data_dir=tmp_path / "server",
        rollout_tick_seconds=0.3,
        desired_state_ttl_seconds=TTL,
        tls_ca_file=tls.ca,  # served to devices at /device/v1/ca.pem
    )
    migrate(settings)
    clock = SkewedClock()
    ctx, admin = open_server(settings, clock=clock)
    assert admin is not None
    try:
        with serve_in_thread(create_app(ctx), tls=(tls.cert, tls.key)) as url:
            yield InProcessFleet(tmp_path, InProcessServer(url, settings.data_dir, tls), admin, clock)
    finally:
        ctx.db.dispose()


@pytest.mark.timeout(300 + 200 * N_AGENT)
def test_clock_skew_agent_and_server(tmp_path: Path, fleet: InProcessFleet, agents: list[AgentProc]) -> None:
    n = N_AGENT
    versions = {"1.0.0": 2.0, "2.0.0": 3.0}
    for version, scale in versions.items():
        fleet.upload(make_bundle(tmp_path, "det", version, scale=scale))
    a = new_agent(tmp_path, fleet, agents)
    a.start()
    a.wait(lambda s: s["polls"] > 0, 90, "enrollment")
    a.join = None
    fleet.deploy("det", "1.0.0")
    a.wait(lambda s: serving(s, "det", "1.0.0") and not s["in_progress"], 120, "first version")
    current = "1.0.0"
    notes = (
        f"a real agent and a server whose clock lags the device's by a random 0-600 s; desired-state "
        f"documents live {TTL:g} s, the server accepts device requests within {SKEW_SECONDS} s of its "
        "clock. A new version is deployed under the skew, then the clocks are made to agree. Checked: "
        f"beyond {SKEW_SECONDS} s the server refuses the device's requests and the agent says why "
        f"(server.clock_skew); beyond {TTL:g} s the agent refuses the already expired document "
        "(agent.expired, naming the expiry); within it the update goes through; in every case the "
        "old version answers until the update, and once the clocks agree the device reaches the new "
        "version (an expired document is signed again when the device asks)."
    )
    with Trials("clock skew between device and server", planned=n, notes=notes) as trials:
        for _ in range(n):
            with trials.trial() as t:
                new = "2.0.0" if current == "1.0.0" else "1.0.0"
                behind = trials.rng.uniform(0, 600)
                for edge in (TTL, float(SKEW_SECONDS)):
                    if abs(behind - edge) < 20:
                        behind = edge + 30  # not on a boundary: the test's own seconds count
                t.measure("server_behind_s", behind)
                _rollout_done(fleet)
                fleet.clock.behind = behind
                fleet.deploy("det", new)
                if behind > SKEW_SECONDS:
                    st = a.wait(lambda s: "[server.clock_skew]" in str(s["last_error"]), 60, "clock refused")
                    t.outcome = (
                        f"server clock behind > {SKEW_SECONDS} s: requests refused [server.clock_skew]"
                    )
                elif behind > TTL:
                    st = a.wait(lambda s: "[agent.expired]" in str(s["last_error"]), 60, "expiry refused")
                    assert "expired at" in st["last_error"]
                    t.outcome = f"server clock behind > {TTL:g} s: expired document refused [agent.expired]"
                else:
                    st = a.wait(lambda s, v=new: serving(s, "det", v) and not s["in_progress"], 120, "update")
                    t.outcome = "skew within the document lifetime: update accepted"
                w = workload_of(st, "det")
                assert w is not None
                if t.outcome.startswith("server clock"):
                    assert w["version"] == current
                    assert infer(int(w["http_port"]))[0] == versions[current]
                fleet.clock.behind = 0.0
                t0 = time.monotonic()
                st = a.wait(
                    lambda s, v=new: serving(s, "det", v) and not s["in_progress"], 120, "after the fix"
                )
                t.measure("recovered_after_s", time.monotonic() - t0)
                assert infer(int(workload_of(st, "det")["http_port"]))[0] == versions[new]  # type: ignore[index]
                current = new
                t.outcome += "; new version reached once the clocks agreed"
