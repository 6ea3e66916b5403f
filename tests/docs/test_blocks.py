"""The docs-test convention: what a page says is parsed as documented in tests/docs/blocks.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.blocks import DocError, parse_page
from tests.docs.runner import run_page

pytestmark = pytest.mark.unit


def _page(tmp_path: Path, text: str) -> Path:
    page = tmp_path / "page.md"
    page.write_text(text)
    return page


def test_directives_attach_to_the_next_shell_block(tmp_path: Path) -> None:
    """skip, requires-command, replace and wait-http apply to the block after them; free-port to the page."""
    page = parse_page(
        _page(
            tmp_path,
            "<!-- docs-test: free-port 8470 -->\n"
            '<!-- docs-test: skip class="hardware" reason="needs a Jetson" -->\n'
            "```sh\nnvidia-smi\n```\n"
            '<!-- docs-test: replace "dev_..." with "$(cat id)" -->\n'
            '<!-- docs-test: wait-http "http://127.0.0.1:8470/healthz" -->\n'
            "```bash\nedgefleet device show dev_...\n```\n",
        ),
        "page.md",
    )
    assert page.free_ports == [8470]
    first, second = page.blocks
    assert (first.skip_class, first.skip_reason, first.line) == ("hardware", "needs a Jetson", 4)
    assert second.replacements == [("dev_...", "$(cat id)")]
    assert second.wait_http == ["http://127.0.0.1:8470/healthz"]


def test_console_commands_and_expected_errors(tmp_path: Path) -> None:
    """`$ ` starts a command, `> ` continues it; output starting with error: is an expected failure."""
    page = parse_page(
        _page(
            tmp_path,
            "```console\n$ echo a \\\n> b\na b\n$ edgefleet serve x.onnx\n"
            "error: model path x.onnx is neither ... [runtime.repository_not_found]\n```\n",
        ),
        "page.md",
    )
    ok, fails = page.blocks[0].commands
    assert ok.text == "echo a \\\nb"
    assert not ok.expects_error
    assert fails.expects_error
    assert fails.error_codes == ["runtime.repository_not_found"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("```\nedgefleet probe\n```\n", "a command in a block that is not run"),
        ("```text\n$ ls\n```\n", "a command in a block that is not run"),
        ('<!-- docs-test: skip class="slow" reason="x" -->\n```sh\nls\n```\n', "skip needs class="),
        ("<!-- docs-test: skip -->\n```sh\nls\n```\n", "skip needs class="),
        ("<!-- docs-test: frobnicate -->\n```sh\nls\n```\n", "unknown docs-test directive"),
        ("<!-- docs-test: bench -->\n", "with no block after it"),
        ("```sh\nls\n", "never closed"),
    ],
)
def test_pages_breaking_the_convention_are_refused(tmp_path: Path, text: str, message: str) -> None:
    """A command outside a run block, an unknown directive or a skip without class and reason is an error."""
    with pytest.raises(DocError, match=message):
        parse_page(_page(tmp_path, text), "page.md")


def test_a_failure_names_the_page_line(tmp_path: Path) -> None:
    """The runner reports the line of the command that failed, and that a shown error did not happen."""
    page = parse_page(_page(tmp_path, "# t\n\n```sh\ntrue\nfalse\ntrue\n```\n"), "page.md")
    result = run_page(page, page.blocks, timeout=60)
    assert not result.ok
    assert result.message.startswith("page.md:5: command failed")

    page = parse_page(_page(tmp_path, "```console\n$ true\nerror: no [x.y]\n```\n"), "page.md")
    result = run_page(page, page.blocks, timeout=60)
    assert result.message == "page.md:2: the page shows an error, but the command succeeded"

    page = parse_page(
        _page(tmp_path, "```console\n$ echo 'error: [x.z]' >&2; false\nerror: [x.y]\n```\n"), "p.md"
    )
    result = run_page(page, page.blocks, timeout=60)
    assert result.message == "p.md:2: the command failed, but without the error code [x.y] the page shows"


def test_cleanup_runs_after_a_failure(tmp_path: Path) -> None:
    """A page's cleanup command runs when the page ends, even when a command failed."""
    mark = tmp_path / "cleaned"
    page = parse_page(
        _page(tmp_path, f'<!-- docs-test: cleanup "touch {mark}" -->\n```sh\nfalse\n```\n'), "page.md"
    )
    assert not run_page(page, page.blocks, timeout=60).ok
    assert mark.exists()
