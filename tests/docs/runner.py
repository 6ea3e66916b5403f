"""Run a page's shell blocks as one bash script in a sandbox and say which page line failed."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from tests.docs.blocks import Block, Page

__all__ = ["REPO", "PageResult", "command_available", "run_page"]

REPO = Path(__file__).resolve().parents[2]
# Linked into the work directory: read by the commands, never written.
_LINKED = ("src", "tests", "deploy", "Makefile", "pyproject.toml", "README.md", "CHANGELOG.md", "mkdocs.yml")
# Copied: commands may write into them (results, regenerated tables).
_COPIED = ("bench", "docs")
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock(name: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(name, threading.Lock())


_FAIL = re.compile(r"^__EF_FAIL__ (\d+) (\d+)$", re.MULTILINE)
_MARK = re.compile(r"^__EF_(UNEXPECTED_SUCCESS|MISSING_CODE|NOT_READY)__ (\S+)(?: (.*))?$", re.MULTILINE)


@dataclass
class PageResult:
    ok: bool
    message: str
    output: str
    seconds: float


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def command_available(command: str) -> bool:
    """True when ``COMMAND --help`` exits 0 with the venv's programs first on PATH."""
    argv = shlex.split(command)
    exe = Path(sys.executable).parent / argv[0]
    if exe.exists():
        argv[0] = str(exe)
    try:
        r = subprocess.run([*argv, "--help"], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


class _Script:
    """The bash text of a page, with the page line of every script line."""

    def __init__(
        self, ports: dict[int, int], replacements: list[tuple[str, str]], cleanup: list[str]
    ) -> None:
        self.cleanup = cleanup
        self.lines: list[str] = []
        self.where: list[str] = []
        self.ports = ports
        self.replacements = replacements
        self.offset = 0

    def _sub(self, text: str) -> str:
        for old, new in self.ports.items():
            text = re.sub(rf"(?<![0-9]){old}(?![0-9])", str(new), text)
        return text

    def emit(self, text: str, where: str) -> None:
        for line in text.split("\n"):
            self.lines.append(line)
            self.where.append(where)

    def block(self, block: Block) -> None:
        self.emit(f'echo "__EF_BLOCK__ {block.where} (at ${{SECONDS}}s)"', block.where)
        for wanted in block.wait_http:
            url = shlex.quote(self._sub(wanted))
            self.emit(
                f"for _i in $(seq 1 240); do curl -kfs -o /dev/null {url} && break; sleep 0.5; done; "
                f"curl -kfsS -o /dev/null {url} || "
                f"{{ echo '__EF_NOT_READY__ {block.where} {url}'; exit 96; }}",
                block.where,
            )
        if block.lang == "file":
            assert block.file is not None
            self.emit(f"cat > {shlex.quote(block.file)} <<'__EF_FILE_END__'", block.where)
            for k, line in enumerate(block.text.split("\n")):
                self.emit(line, f"{block.page}:{block.line + k}")
            self.emit("__EF_FILE_END__", block.where)
            return
        if block.lang == "console":
            for cmd in block.commands:
                text = self._fill(block, cmd.text)
                self._console(block, cmd.line, text, cmd.error_codes, cmd.expects_error)
        else:
            for k, line in enumerate(self._fill(block, block.text).split("\n")):
                self.emit(line, f"{block.page}:{block.line + k}")

    def _fill(self, block: Block, text: str) -> str:
        for old, new in [*block.replacements, *self.replacements]:
            text = text.replace(old, new)
        lines = []
        for line in text.split("\n"):
            cmd = line.split("#", 1)[0].strip()
            lines.append(": runs this test" if cmd in block.runs_this_test else line)
        return self._sub("\n".join(lines))

    def _console(self, block: Block, line: int, text: str, codes: list[str], fails: bool) -> None:
        where = f"{block.page}:{line}"
        if not fails:
            for k, part in enumerate(text.split("\n")):
                self.emit(part, f"{block.page}:{line + k}")
            return
        self.emit(f"if __ef_out=$( trap - ERR; set +eE; {{\n{text}\n}} 2>&1 ); then", where)
        self.emit(f"  printf '%s\\n' \"$__ef_out\"; echo '__EF_UNEXPECTED_SUCCESS__ {where}'; exit 97", where)
        self.emit("fi; printf '%s\\n' \"$__ef_out\"", where)
        for code in codes:
            self.emit(
                f'grep -qF -- {shlex.quote("[" + code + "]")} <<<"$__ef_out" || '
                f"{{ echo '__EF_MISSING_CODE__ {where} [{code}]'; exit 98; }}",
                where,
            )

    def text(self) -> str:
        head = [
            "set -eE",  # no pipefail: a reader's shell has none (`cmd | grep -q` must work)
            "trap 'echo \"__EF_FAIL__ $LINENO $?\"' ERR",
            "trap 'exit 143' TERM",  # so that the EXIT trap (cleanup) runs on a timeout too
        ]
        if self.cleanup:
            steps = "; ".join(f"{self._sub(c)} > /dev/null 2>&1" for c in self.cleanup)
            head.append(f"trap {shlex.quote(f'set +e; {steps}')} EXIT")
        # Header lines shift LINENO: the where table is indexed from the first page line.
        self.offset = len(head)
        return "\n".join([*head, *self.lines, ""])


def _workdir(root: Path) -> Path:
    work = root / "work"
    work.mkdir()
    for name in _LINKED:
        if (REPO / name).exists():
            (work / name).symlink_to(REPO / name)
    (work / ".venv").symlink_to(Path(sys.prefix))
    for name in _COPIED:
        subprocess.run(["cp", "-a", str(REPO / name), str(work / name)], check=True)
    return work


def _env(root: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEFLEET_", "PYTEST"))}
    home = root / "home"
    home.mkdir()
    keep.update(
        HOME=str(home),
        EDGEFLEET_DATA_DIR=str(root / "data"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        PYTHONDONTWRITEBYTECODE="1",
        TERM="dumb",
        COLUMNS="120",
    )
    keep.pop("VIRTUAL_ENV", None)
    return keep


def run_page(page: Page, blocks: list[Block], *, timeout: float | None = None) -> PageResult:
    """Run ``blocks`` (in page order) in a fresh sandbox; stop every process it left behind."""
    with ExitStack() as held:
        for name in sorted(page.locks):
            held.enter_context(_lock(name))
        return _run_page(page, blocks, timeout=timeout)


def _run_page(page: Page, blocks: list[Block], *, timeout: float | None) -> PageResult:
    ports = {p: _free_port() for p in page.free_ports}
    script = _Script(ports, page.replacements, page.cleanup)
    for block in blocks:
        script.block(block)
    limit = timeout or page.timeout
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ef-docs-") as tmp:
        root = Path(tmp)
        work = _workdir(root)
        for sub in page.keep_cache:
            kept = Path.home() / ".cache" / "edgefleet-docs-test" / sub
            kept.mkdir(parents=True, exist_ok=True)
            (root / "data" / sub).parent.mkdir(parents=True, exist_ok=True)
            (root / "data" / sub).symlink_to(kept)
        (root / "page.sh").write_text(script.text())
        log = root / "output.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                ["bash", str(root / "page.sh")],
                cwd=work,
                env=_env(root),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            timed_out = False
            try:
                proc.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _stop_group(proc)
        output = log.read_text(errors="replace")
    seconds = time.monotonic() - started
    if timed_out:
        last = re.findall(r"^__EF_BLOCK__ (\S+)", output, re.MULTILINE)
        where = last[-1] if last else page.path
        return PageResult(False, f"{where}: still running after {limit:.0f}s", output, seconds)
    mark = _MARK.search(output)
    if mark:
        kind, where, extra = mark.group(1), mark.group(2), mark.group(3) or ""
        why = {
            "UNEXPECTED_SUCCESS": "the page shows an error, but the command succeeded",
            "MISSING_CODE": f"the command failed, but without the error code {extra} the page shows",
            "NOT_READY": f"{extra} never answered",
        }[kind]
        return PageResult(False, f"{where}: {why}", output, seconds)
    fail = _FAIL.search(output)
    if fail or proc.returncode != 0:
        where = page.path
        status = proc.returncode
        if fail:
            lineno, status = int(fail.group(1)), int(fail.group(2))
            idx = lineno - 1 - script.offset
            if 0 <= idx < len(script.where):
                where = script.where[idx]
        return PageResult(False, f"{where}: command failed (exit status {status})", output, seconds)
    return PageResult(True, "", output, seconds)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the page's process group (its servers started with '&'), then SIGKILL what is left."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
    if proc.poll() is None:
        proc.wait(timeout=5)
