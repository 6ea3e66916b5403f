"""The /ui router: assets from the package with their types, the page for unknown paths, no
traversal out of the static folder, a CSP that forbids other origins, nothing fetched from elsewhere."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from edgefleet.server.ui import STATIC_DIR, router
from tests.integration.server.conftest import serve_in_thread

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    app = FastAPI()
    app.include_router(router)
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as c:
        yield c


def test_assets_and_page(client: httpx.Client) -> None:
    r = client.get("/ui")
    assert r.status_code == 307
    assert r.headers["location"] == "/ui/"
    page = client.get("/ui/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for ref in re.findall(r'(?:src|href)="(/ui/[^"]+)"', page.text):
        asset = client.get(ref)
        assert asset.status_code == 200, ref
        assert asset.headers["content-type"].split(";")[0] in {"text/javascript", "text/css"}, ref
    assert client.get("/ui/devices/dev_1").text == page.text  # client-side routes get the page


@pytest.mark.parametrize(
    "path", ["/ui/../../pyproject.toml", "/ui/%2e%2e/__init__.py", "/ui/..%2F__init__.py"]
)
def test_no_file_outside_static(client: httpx.Client, path: str) -> None:
    r = client.get(path)
    assert r.status_code in (200, 404)
    assert "import" not in r.text


def test_no_remote_asset_referenced() -> None:
    """Every URL in the UI's code is local (SVG/XHTML namespaces and comments aside)."""
    for f in STATIC_DIR.rglob("*"):
        if f.suffix not in {".js", ".css", ".html"}:
            continue
        text = re.sub(r"/\*.*?\*/", "", f.read_text(encoding="utf-8"), flags=re.DOTALL)  # licence headers
        urls = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s\"')]*", text)
        remote = [u for u in urls if "www.w3.org" not in u]
        assert not remote, f"{f.name}: {remote[:3]}"
    licence = STATIC_DIR / "vendor" / "uplot" / "LICENSE"
    assert "MIT" in licence.read_text()
