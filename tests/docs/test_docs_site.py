"""The documentation site builds with no warning, works offline, and the top-level pages' links resolve."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.runner import REPO

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)
_EXTERNAL_ASSET = re.compile(
    r"<(?:script|link|img)\b[^>]*\b(?:src|href)=\"(?:https?:)?//[^\"]+\"[^>]*>", re.IGNORECASE
)


def _slug(heading: str) -> str:
    """The anchor Python-Markdown's toc extension gives a heading."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\s-]", "", text)
    return re.sub(r"[-\s]+", "-", text).strip("-")


def _broken_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    text = re.sub(r"`[^`\n]*`", "", text)
    broken: list[str] = []
    for m in _LINK.finditer(text):
        target = m.group(1) or m.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        line = text.count("\n", 0, m.start()) + 1
        if not dest.exists():
            broken.append(f"{page.name}:{line}: {target} (no such file)")
        elif anchor and dest.suffix == ".md":
            slugs = {_slug(h) for h in _HEADING.findall(dest.read_text(encoding="utf-8"))}
            if anchor not in slugs:
                broken.append(f"{page.name}:{line}: {target} (no heading #{anchor} in {dest.name})")
    return broken


@pytest.mark.unit
@pytest.mark.parametrize("name", ["README.md", "CHANGELOG.md"])
def test_top_level_links_resolve(name: str) -> None:
    """Every relative link (and #anchor into a Markdown page) in README.md and CHANGELOG.md exists."""
    assert _broken_links(REPO / name) == []


@pytest.mark.integration
def test_site_builds_strict_without_warnings(tmp_path: Path) -> None:
    """`mkdocs build --strict` passes with no warning (broken links and anchors are warnings)."""
    site = tmp_path / "site"
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "WARNING" not in out, out
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 20
    for html in pages:
        assets = _EXTERNAL_ASSET.findall(html.read_text(encoding="utf-8"))
        assert assets == [], f"{html.name} loads assets from the network: {assets}"
