"""The web UI in headless Chromium against a live server with simulated devices.

Set ``EDGEFLEET_UI_SCREENSHOTS=docs/observe`` to keep the screenshots (the docs use them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgefleet.testing.require import require, require_tool
from tests.integration.observe.conftest import LiveFleet

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def browser() -> Iterator[Any]:
    require(Path(CHROMIUM).exists(), "Debian's chromium at /usr/bin/chromium")
    require_tool("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


class Shots:
    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "screens"
        self.dir.mkdir()
        keep = os.environ.get("EDGEFLEET_UI_SCREENSHOTS")
        self.keep = Path(keep) if keep else None

    def take(self, page: Any, name: str) -> None:
        path = self.dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 1000
        if self.keep:  # a 64-colour palette keeps the committed images small
            from PIL import Image

            self.keep.mkdir(parents=True, exist_ok=True)
            with Image.open(path) as img:
                img.convert("RGB").quantize(colors=64).save(self.keep / path.name, optimize=True)


def _sign_in(page: Any, url: str, token: str) -> None:
    page.goto(url + "/ui/")
    page.fill("#token", token)
    page.click("#signin-button")
    page.wait_for_selector("[data-testid=whoami]")


def _ship_logs(fleet: LiveFleet, device_id: str) -> None:
    """Send one log batch as the simulated device ``device_id`` would (signed, gzip JSON lines)."""
    import gzip
    import json
    import time

    from edgefleet.agent.protocol import sign_request

    dev = next(d for s in fleet.sims for d in s.devices if d.device_id == device_id)
    lines = [
        {
            "ts": time.time(),
            "source": "agent",
            "workload": None,
            "level": "info",
            "msg": "updated deployment=det",
        },
        {
            "ts": time.time(),
            "source": "workload",
            "workload": "det",
            "level": None,
            "msg": "model det loaded <ok>",
        },
    ]
    body = gzip.compress("".join(json.dumps(x) + "\n" for x in lines).encode())
    target = "/device/v1/logs?batch=1"
    headers = sign_request(dev.key, device_id, "POST", target, body) | {"Content-Encoding": "gzip"}
    r = fleet.client.post(target, content=body, headers=headers)
    assert r.status_code == 200, r.text


def test_ui_operator_and_viewer(live_fleet: LiveFleet, browser: Any, tmp_path: Path) -> None:  # noqa: PLR0915 - one scenario
    fleet = live_fleet
    shots = Shots(tmp_path)
    for v in ("1.0.0", "2.0.0"):
        fleet.upload("det", v)
    fleet.upload("cam", "9.9.9")
    fleet.deploy("det", "det", "1.0.0", "site=lab")
    fleet.wait(
        lambda: fleet.api("GET", "/deployments/det").json()["rollout"]["phase"] == "completed", what="det 1"
    )
    # a bad bundle on the field devices: crash loops, the gate pauses the rollout
    fleet.deploy("cam", "cam", "9.9.9", "site=field", on_failure="pause")
    fleet.wait(
        lambda: fleet.api("GET", "/deployments/cam").json()["rollout"]["phase"] == "paused", what="cam paused"
    )
    dep = fleet.deploy("det", "det", "2.0.0", "site=lab", bake_seconds=4)
    rollout_id = dep["rollout"]["id"]

    errors: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    page.on("pageerror", lambda e: errors.append(str(e)))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))

    # a wrong token is refused on the sign-in form
    page.goto(fleet.url + "/ui/")
    page.fill("#token", "efk_wrong")
    page.click("#signin-button")
    page.wait_for_function("document.getElementById('signin-error').textContent.length > 0")
    shots.take(page, "signin")

    _sign_in(page, fleet.url, fleet.token("operator"))
    page.wait_for_selector("[data-testid=alert-crash]")
    page.wait_for_selector("[data-testid=alert-gate]")
    assert page.inner_text("[data-testid=status-total] .big") == "8"
    shots.take(page, "overview")

    # devices: filter by label selector and by search
    page.click("nav a[href='#/devices']")
    page.wait_for_selector("[data-testid=device-row]")
    assert page.locator("[data-testid=device-row]").count() == 8
    page.fill("#selector", "site=field")
    page.wait_for_function("document.querySelectorAll('[data-testid=device-row]').length === 3")
    page.fill("#search", "sim-000001")
    page.wait_for_function("document.querySelectorAll('[data-testid=device-row]').length === 1")
    page.fill("#search", "")
    page.fill("#selector", "site=lab")
    page.wait_for_function("document.querySelectorAll('[data-testid=device-row]').length === 5")
    shots.take(page, "devices")

    # one device: workloads, health, charts filled while the page is open, logs as they arrive
    page.locator("[data-testid=device-row]").first.click()
    page.wait_for_selector("[data-testid=workloads]")
    page.wait_for_selector("[data-testid=chart] canvas")
    page.wait_for_function(
        "document.querySelector('[data-testid=device-logs]').textContent.includes('No logs')"
    )
    _ship_logs(fleet, page.url.rsplit("/", 1)[1])
    page.wait_for_function(
        "document.querySelector('[data-testid=device-logs]').textContent.includes('model det loaded <ok>')"
    )
    assert "agent  info  updated deployment=det" in page.inner_text("[data-testid=device-logs]")
    page.wait_for_timeout(4500)
    shots.take(page, "device")

    page.click("nav a[href='#/bundles']")
    page.wait_for_selector("[data-testid=bundle-table]")
    assert page.locator("[data-testid=bundle-table]").count() == 2
    shots.take(page, "bundles")

    page.click("nav a[href='#/deployments']")
    page.wait_for_selector("[data-testid=deployment-row]")
    shots.take(page, "deployments")

    # the rollout advances on screen, then pause and resume from the buttons
    page.goto(f"{fleet.url}/ui/#/rollouts/{rollout_id}")
    page.wait_for_selector("[data-testid=gates]")
    page.wait_for_function("document.querySelectorAll('[data-testid=wave].done').length >= 1", timeout=30_000)
    page.wait_for_selector("#btn-pause:not([disabled])")
    page.fill("#reason", "checking the cameras")
    page.click("#btn-pause")
    page.wait_for_selector("[data-testid=rollout-phase] .st-paused")
    page.wait_for_selector("text=checking the cameras")
    assert fleet.api("GET", f"/rollouts/{rollout_id}").json()["phase"] == "paused"
    shots.take(page, "rollout-paused")
    page.click("#btn-resume")
    page.wait_for_function(
        "!document.querySelector('[data-testid=rollout-phase] .st-paused')", timeout=10_000
    )
    page.wait_for_selector("[data-testid=rollout-phase] .st-completed", timeout=60_000)
    shots.take(page, "rollout")

    # a viewer sees the same rollout, without any action button; the server refuses it anyway
    viewer = browser.new_page(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    _sign_in(viewer, fleet.url, fleet.token("viewer"))
    cam = fleet.api("GET", "/deployments/cam").json()["rollout"]["id"]
    viewer.goto(f"{fleet.url}/ui/#/rollouts/{cam}")
    viewer.wait_for_selector("[data-testid=gates]")
    assert viewer.locator("[data-testid=rollout-actions]").count() == 0
    assert viewer.locator("button[data-action]").count() == 0
    shots.take(viewer, "rollout-viewer")
    refused = fleet.api("POST", f"/rollouts/{cam}/resume", token=fleet.token("viewer"), json={})
    assert refused.status_code == 403

    assert not errors, errors
    foreign = [u for u in requests if not u.startswith(fleet.url)]
    assert not foreign, f"the UI fetched from elsewhere: {foreign}"
