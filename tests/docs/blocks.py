"""Every shell command shown in the documentation, extracted so that a test can run it.

A page's shell blocks (```sh, ```bash, ```console) run in order, in one bash process per page, so
they share variables, files and background processes. What cannot simply run top to bottom is said
by an HTML comment right before a block (the reader never sees it) or anywhere in the page:

``<!-- docs-test: skip class="hardware" reason="needs a Jetson" -->``
    Do not run the next block: it needs what a test machine cannot have (a board, an accelerator,
    systemd as PID 1). The only class; allowed even under ``EDGEFLEET_REQUIRE_ALL=1``, and reported
    as a skip with its reason.
``<!-- docs-test: runs-this-test "make test" -->``
    In the next block, that command is not run: it is the command that runs this test (a Makefile
    target whose recipe runs pytest; the test checks that it does). Running it here would recurse.
``<!-- docs-test: bench -->``
    The next block reproduces a measurement (minutes): it runs with ``pytest -m bench``
    (``make bench``), the rest of the page with it, never in the default run.
``<!-- docs-test: requires-command "edgefleet up" -->``
    Run the next block only when ``edgefleet up --help`` works; otherwise it is reported as pending
    (a skip, which ``EDGEFLEET_REQUIRE_ALL=1`` turns into a failure).
``<!-- docs-test: replace "efk_..." with "$(grep -o 'efk_[A-Za-z0-9_-]*' server.log)" -->``
    A placeholder the reader fills from earlier output: in the next block, the text is replaced by
    shell text evaluated when the block runs.
``<!-- docs-test: wait-http "http://127.0.0.1:8470/healthz" -->``
    Before the next block, wait until the URL answers (a server an earlier block started with ``&``
    is still starting; a reader would wait too).
``<!-- docs-test: file "orient.toml" -->``
    Before a block that is not shell (TOML, JSON, YAML): write its text to that file, in page order,
    as the reader would save it.
Page-wide, anywhere in the page:
``<!-- docs-test: free-port 8470 8000 -->``
    These port numbers are replaced by free ports in every command of the page, so that a page
    never collides with a service already running.
``<!-- docs-test: replace-all "/opt/edgefleet" with "$PWD/root/opt/edgefleet" -->``
    Like ``replace``, in every block of the page: a path on the host is moved into the sandbox.
``<!-- docs-test: requires-tcp 127.0.0.1:5432 -->``
    The page needs this service (PostgreSQL here); without it the page is skipped (a failure under
    ``EDGEFLEET_REQUIRE_ALL=1``).
``<!-- docs-test: keep-cache "cache/image" -->``
    This part of the data directory outlives the sandbox (it lives under
    ``~/.cache/edgefleet-docs-test``): downloads a second run need not repeat, as on a reader's
    machine. Each command still runs in full.
``<!-- docs-test: cleanup ".venv/bin/edgefleet down --purge" -->``
    Run this when the page ends, also after a failure or a timeout: what the page started outside its
    process group (daemons) is stopped. Its own failure is ignored.
``<!-- docs-test: lock "edgefleet up" -->``
    Pages holding the same lock never run at the same time (pages run in parallel otherwise): for
    commands that take a fixed resource, such as ``edgefleet up`` on its default port.
``<!-- docs-test: timeout 300 -->``
    Seconds the whole page may run (default 180).

In a ```console block, lines starting with ``$ `` are commands (``> `` continues one) and the other
lines are their output. A command whose output starts with ``error:`` must fail, and every
``[code]`` in that output must appear in what it printed: troubleshooting pages show real errors.

A fenced block without a language whose first line looks like a command (``edgefleet ...``,
``$ ...``) is refused: a command shown must be in a block that is run.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Block", "Command", "DocError", "Page", "parse_page"]

SHELL_LANGS = frozenset({"sh", "bash", "console"})
SKIP_CLASSES = frozenset({"hardware"})
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
_DIRECTIVE = re.compile(r"<!--\s*docs-test:\s*(.*?)\s*-->", re.DOTALL)
_LOOKS_LIKE_COMMAND = re.compile(r"^\s*(\$ |edgefleet |\.venv/bin/|make |pip |curl |sudo )")
_CODE = re.compile(r"\[([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+|[a-z]+_[a-z_]+)\]")


class DocError(ValueError):
    """A page breaks the convention above; the message names the page and line."""


@dataclass(frozen=True)
class Command:
    """One command of a ```console block, with the output the page shows for it."""

    line: int
    text: str
    output: str

    @property
    def expects_error(self) -> bool:
        return self.output.lstrip().startswith("error:")

    @property
    def error_codes(self) -> list[str]:
        return _CODE.findall(self.output) if self.expects_error else []


@dataclass
class Block:
    """One shell block: where it is, its text, and what the directives before it say."""

    page: str
    line: int  # line of the first command (1-based)
    lang: str
    text: str  # the block body (sh/bash) as the page shows it
    commands: list[Command] = field(default_factory=list)  # console blocks only
    skip_class: str | None = None
    skip_reason: str | None = None
    bench: bool = False
    requires_command: str | None = None
    replacements: list[tuple[str, str]] = field(default_factory=list)
    wait_http: list[str] = field(default_factory=list)
    runs_this_test: list[str] = field(default_factory=list)
    file: str | None = None  # lang "file": write text to this file

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass
class Page:
    path: str
    blocks: list[Block]
    free_ports: list[int] = field(default_factory=list)
    replacements: list[tuple[str, str]] = field(default_factory=list)
    requires_tcp: list[str] = field(default_factory=list)
    keep_cache: list[str] = field(default_factory=list)
    cleanup: list[str] = field(default_factory=list)
    locks: list[str] = field(default_factory=list)
    timeout: float = 180.0


def _words(text: str, where: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise DocError(f"{where}: docs-test directive {text!r}: {exc}") from exc


def _console_commands(lines: list[str], first: int) -> list[Command]:
    out: list[Command] = []
    cur: list[str] = []
    cur_line = 0
    output: list[str] = []

    def flush() -> None:
        if cur:
            out.append(Command(cur_line, "\n".join(cur), "\n".join(output)))

    for i, raw in enumerate(lines):
        if raw.startswith("$ "):
            flush()
            cur, cur_line, output = [raw[2:]], first + i, []
        elif raw.startswith("> ") and cur and not output:
            cur.append(raw[2:])
        else:
            output.append(raw)
    flush()
    return out


def parse_page(path: Path, rel: str) -> Page:  # noqa: PLR0912, PLR0915 - one pass, one branch per kind of line
    """Read one Markdown page: its shell blocks and their directives."""
    lines = path.read_text(encoding="utf-8").splitlines()
    page = Page(rel, [])
    pending: list[tuple[int, str]] = []  # directives waiting for the next block
    i = 0
    while i < len(lines):
        text = lines[i]
        if "<!--" in text and "docs-test:" in text:
            start = i
            chunk = text
            while "-->" not in chunk and i + 1 < len(lines):
                i += 1
                chunk += "\n" + lines[i]
            for m in _DIRECTIVE.finditer(chunk):
                where = f"{rel}:{start + 1}"
                words = _words(m.group(1), where)
                if not words:
                    raise DocError(f"{where}: empty docs-test directive")
                if words[0] == "free-port":
                    page.free_ports += [int(w) for w in words[1:]]
                elif words[0] == "timeout":
                    page.timeout = float(words[1])
                elif words[0] == "lock" and len(words) == 2:
                    page.locks.append(words[1])
                elif words[0] == "cleanup" and len(words) == 2:
                    page.cleanup.append(words[1])
                elif words[0] == "keep-cache" and len(words) == 2:
                    page.keep_cache.append(words[1])
                elif words[0] == "requires-tcp" and len(words) == 2:
                    page.requires_tcp.append(words[1])
                elif words[0] == "replace-all" and len(words) == 4 and words[2] == "with":
                    page.replacements.append((words[1], words[3]))
                else:
                    pending.append((start + 1, m.group(1)))
            i += 1
            continue
        fence = _FENCE.match(text)
        if not fence:
            i += 1
            continue
        indent, marker, lang = fence.group(1), fence.group(2), fence.group(3).lower()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(marker[0] * len(marker)):
            body.append(lines[j].removeprefix(indent))
            j += 1
        if j == len(lines):
            raise DocError(f"{rel}:{i + 1}: code block never closed")
        if lang in SHELL_LANGS:
            block = Block(rel, i + 2, lang, "\n".join(body))
            if lang == "console":
                block.commands = _console_commands(body, i + 2)
                if not block.commands:
                    raise DocError(f"{rel}:{i + 1}: a console block with no '$ ' command")
            for line_no, directive in pending:
                _apply(block, directive, f"{rel}:{line_no}")
            page.blocks.append(block)
        elif len(pending) == 1 and _words(pending[0][1], rel)[0] == "file":
            words = _words(pending[0][1], f"{rel}:{pending[0][0]}")
            if len(words) != 2:
                raise DocError(f"{rel}:{pending[0][0]}: file needs one file name")
            page.blocks.append(Block(rel, i + 2, "file", "\n".join(body), file=words[1]))
        else:
            if pending:
                raise DocError(f"{rel}:{pending[0][0]}: docs-test directive before a {lang or 'plain'} block")
            first = next((b for b in body if b.strip()), "")
            if lang in {"", "text"} and _LOOKS_LIKE_COMMAND.match(first):
                raise DocError(
                    f"{rel}:{i + 1}: a command in a block that is not run ({first.strip()!r}): "
                    "fence it as sh or console"
                )
        pending = []
        i = j + 1
    if pending:
        raise DocError(f"{rel}:{pending[0][0]}: docs-test directive with no block after it")
    return page


def _apply(block: Block, directive: str, where: str) -> None:
    words = _words(directive, where)
    kind, args = words[0], words[1:]
    if kind == "skip":
        opts = dict(a.split("=", 1) for a in args if "=" in a)
        cls, reason = opts.get("class"), opts.get("reason")
        if cls not in SKIP_CLASSES or not reason:
            raise DocError(
                f"{where}: skip needs class= one of {sorted(SKIP_CLASSES)} and a reason= (got {directive!r})"
            )
        block.skip_class, block.skip_reason = cls, reason
    elif kind == "runs-this-test" and len(args) == 1:
        block.runs_this_test.append(args[0])
    elif kind == "bench":
        block.bench = True
    elif kind == "requires-command" and len(args) == 1:
        block.requires_command = args[0]
    elif kind == "replace" and len(args) == 3 and args[1] == "with":
        block.replacements.append((args[0], args[2]))
    elif kind == "wait-http" and len(args) == 1:
        block.wait_http.append(args[0])
    else:
        raise DocError(
            f"{where}: unknown docs-test directive {directive!r}; known: skip, runs-this-test, bench, "
            "requires-command, replace ... with ..., wait-http, file, free-port, replace-all, requires-tcp, "
            "keep-cache, cleanup, lock, timeout"
        )
