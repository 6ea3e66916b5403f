"""Every command shown in the documentation runs (see tests/docs/blocks.py for the convention)."""

from __future__ import annotations

import os
import re
import shlex
import socket
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from tests.docs.blocks import Block, DocError, Page, parse_page
from tests.docs.runner import REPO, PageResult, command_available, run_page

_PAGES = sorted(
    [*REPO.glob("*.md"), *(REPO / "docs").rglob("*.md")],
    key=lambda p: str(p.relative_to(REPO)),
)


def _load() -> tuple[list[Page], list[str]]:
    pages: list[Page] = []
    errors: list[str] = []
    for path in _PAGES:
        try:
            pages.append(parse_page(path, str(path.relative_to(REPO))))
        except DocError as exc:
            errors.append(str(exc))
    return pages, errors


PAGES, PARSE_ERRORS = _load()


def _runnable(block: Block, *, bench: bool) -> bool:
    if block.skip_class is not None or (block.bench and not bench):
        return False
    return block.requires_command is None or command_available(block.requires_command)


def _reachable(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=3):
            return True
    except OSError:
        return False


def _start(page: Page, *, bench: bool) -> Future[PageResult] | str:
    """Start the page in the pool, or say why it does not run here."""
    blocks = [b for b in page.blocks if _runnable(b, bench=bench)]
    if not any(b.lang != "file" for b in blocks):
        pending = sorted({b.requires_command for b in page.blocks if b.requires_command})
        return f"{page.path}: no block runs here" + (f" (pending: {', '.join(pending)})" if pending else "")
    for address in page.requires_tcp:
        if not _reachable(address):
            return f"{page.path} needs a service on {address}"
    # Benchmarks take minutes to hours; the page's own timeout is for its quick commands.
    return _pool().submit(run_page, page, blocks, timeout=7000 if bench else None)


_POOL: list[ThreadPoolExecutor] = []


def _pool() -> ThreadPoolExecutor:
    # Pages wait on servers, polls and sleeps much of the time: a few at once (EDGEFLEET_DOCS_JOBS).
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(max_workers=int(os.environ.get("EDGEFLEET_DOCS_JOBS", "3"))))
    return _POOL[0]


@pytest.fixture(scope="module")
def started(request: pytest.FixtureRequest) -> dict[str, Future[PageResult] | str]:
    """Every selected page, started at once on first use; each test waits for its own."""
    selected = {
        item.callspec.params["page"].path
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_page_commands_run" and hasattr(item, "callspec")
    }
    # Longest first (a page's timeout says how long it may take), so the slow ones do not come last.
    ordered = sorted((p for p in DEFAULT_PAGES if p.path in selected), key=lambda p: -p.timeout)
    return {p.path: _start(p, bench=False) for p in ordered}


def _check(outcome: Future[PageResult] | str, page: Page) -> None:
    if isinstance(outcome, str):
        pytest.skip(outcome)
    result = outcome.result()
    assert result.ok, f"{result.message}\n--- output of {page.path} ---\n{result.output[-6000:]}"


DEFAULT_PAGES = [
    p for p in PAGES if any(not b.bench and b.skip_class is None and b.lang != "file" for b in p.blocks)
]


@pytest.mark.unit
def test_every_page_follows_the_convention() -> None:
    """Pages parse: directives are known, skips have a class and a reason, no command hides elsewhere."""
    assert not PARSE_ERRORS, "\n".join(PARSE_ERRORS)


@pytest.mark.integration
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("page", DEFAULT_PAGES, ids=lambda p: p.path)
def test_page_commands_run(page: Page, started: dict[str, Future[PageResult] | str]) -> None:
    """The page's shell blocks, in order, in one sandbox: each command succeeds (or fails as shown)."""
    _check(started[page.path], page)


@pytest.mark.bench
@pytest.mark.timeout(7200)
@pytest.mark.parametrize("page", [p for p in PAGES if any(b.bench for b in p.blocks)], ids=lambda p: p.path)
def test_page_benchmarks_run(page: Page) -> None:
    """The page with its benchmark blocks (minutes each): `make bench` runs them, one page at a time."""
    outcome = _start(page, bench=True)
    _check(outcome, page)


_NOT_RUN = [
    b for p in PAGES for b in p.blocks if b.skip_class is not None or b.requires_command or b.runs_this_test
]


@pytest.mark.unit
@pytest.mark.parametrize(
    "block",
    [pytest.param(b, marks=pytest.mark.hardware) if b.skip_class == "hardware" else b for b in _NOT_RUN],
    ids=lambda b: b.where,
)
def test_block_not_run_here(block: Block) -> None:
    """What the default run leaves out says why: hardware (a skip), the command that runs this test, or a
    command still pending."""
    if block.skip_class == "hardware":
        pytest.skip(f"{block.where}: {block.skip_reason}")
    makefile = (REPO / "Makefile").read_text()
    for cmd in block.runs_this_test:
        shown = [line.split("#", 1)[0].strip() for line in block.text.splitlines()]
        assert cmd in shown, f"{block.where}: runs-this-test {cmd!r} is not a line of the block"
        target = re.fullmatch(r"make (\w+)", cmd)
        assert target, f"{block.where}: runs-this-test takes a 'make TARGET' command, not {cmd!r}"
        recipe = re.search(rf"^{target.group(1)}:.*\n((?:\t.*\n)*)", makefile, re.MULTILINE)
        assert recipe, f"{block.where}: the Makefile has no target {target.group(1)!r}"
        assert "pytest" in recipe.group(1), f"{block.where}: 'make {target.group(1)}' runs no pytest"
    if block.requires_command and not command_available(block.requires_command):
        pytest.skip(
            f"{block.where}: pending: {block.requires_command!r} does not exist yet "
            f"({shlex.quote(block.requires_command)} --help failed)"
        )
