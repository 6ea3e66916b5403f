"""The workload's model repository, and hot reload of a model-only change in a running serve.

Each workload serves a model repository of its own (``docs/serve.md``)::

    <state>/models/<sandbox>/<model name>/<n>/model.onnx     a hard link into bundles/<sha256>/

A new release that differs from the running one only in the model (same model name and format,
same resources and serving config) gets version ``n+1`` placed beside ``n`` (staged, then renamed,
so serve never reads half a file) and ``POST /v2/repository/models/<m>/load``: serve loads the new
version before anything changes and swaps it in, requests in flight finish on the old one, none fail.
A version that fails to load leaves the old one serving; the agent then removes it and loads again.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
from pathlib import Path

from edgefleet.agent.errors import AgentVerificationError

__all__ = ["load", "model_file", "prune", "stage", "version_ready"]


def model_file(model_path: str) -> str:
    """The file name serve expects in a version directory (the suffix picks the backend)."""
    return "model.tflite" if model_path.endswith(".tflite") else "model.onnx"


def stage(repo: Path, model: str, version: int, source: Path, file_name: str) -> Path:
    """Place ``source`` as ``<repo>/<model>/<version>/<file_name>`` atomically (a rename)."""
    model_dir = repo / model
    model_dir.mkdir(parents=True, exist_ok=True)
    final = model_dir / str(version)
    if (final / file_name).is_file():
        return final
    staging = model_dir / f".staging-{version}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        os.link(source, staging / file_name)
    except OSError:
        shutil.copyfile(source, staging / file_name)
        with (staging / file_name).open("rb") as f:
            os.fsync(f.fileno())
    staging.chmod(0o755)
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    fd = os.open(model_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return final


def prune(repo: Path, model: str, keep: set[int]) -> list[int]:
    """Remove every version directory of ``model`` not in ``keep`` (and staging leftovers)."""
    removed: list[int] = []
    model_dir = repo / model
    if not model_dir.is_dir():
        return removed
    for child in model_dir.iterdir():
        if child.name.startswith(".staging-"):
            shutil.rmtree(child, ignore_errors=True)
        elif child.name.isdigit() and int(child.name) not in keep:
            shutil.rmtree(child, ignore_errors=True)
            removed.append(int(child.name))
    return removed


def _request(port: int, method: str, path: str, timeout: float) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=b"" if method == "POST" else None)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def load(port: int, model: str, timeout: float = 300.0) -> None:
    """Ask the serve on ``port`` to rescan ``model``; the load error (with serve's reason) otherwise."""
    try:
        status, body = _request(port, "POST", f"/v2/repository/models/{model}/load", timeout)
    except (OSError, http.client.HTTPException) as exc:
        raise AgentVerificationError(
            f"hot reload: serve did not answer: {exc}", code="agent.reload_failed"
        ) from exc
    if status != 200:
        message = body[:500].decode(errors="replace")
        with contextlib.suppress(ValueError, KeyError, TypeError):
            err = json.loads(body)["error"]
            message = err["message"] if isinstance(err, dict) else str(err)
        raise AgentVerificationError(
            f"hot reload: serve could not load the new model: {message}", code="agent.reload_failed"
        )


def version_ready(port: int, model: str, version: int, timeout: float = 5.0) -> bool:
    with contextlib.suppress(OSError, http.client.HTTPException):
        status, _ = _request(port, "GET", f"/v2/models/{model}/versions/{version}/ready", timeout)
        return status == 200
    return False
