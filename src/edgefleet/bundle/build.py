"""Build a bundle: collect the files, read the model's signature, write a reproducible tar.

Reproducible means the same inputs (file bytes, options and ``created``) give the same bytes:
entries are sorted, ``bundle.json`` comes first, every mtime is ``created``, uid/gid are 0 with
empty owner names, modes are 0644, the tar is PAX format and uncompressed (no gzip timestamp).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from edgefleet.bundle.errors import (
    BundleConflictError,
    BundleInputError,
    BundleNotFoundError,
    BundleWriteError,
)
from edgefleet.bundle.fsio import sha256_file
from edgefleet.bundle.manifest import (
    MANIFEST_NAME,
    BundleManifest,
    FileEntry,
    ModelFormat,
    ModelSpec,
    ProcessingSpec,
    ResourceHints,
    TensorSpec,
    check_relative_path,
)

__all__ = [
    "BuildOptions",
    "BuiltBundle",
    "SignatureSpec",
    "build_bundle",
    "created_from",
    "load_processing",
    "load_signature",
    "write_bundle_tar",
]

_M = TypeVar("_M", bound=BaseModel)
_FORMATS: Final[dict[str, ModelFormat]] = {".onnx": "onnx", ".tflite": "tflite"}
FILE_MODE: Final = 0o644


@dataclass(frozen=True)
class BuildOptions:
    """What ``edgefleet bundle build`` takes besides the model file or directory."""

    name: str
    version: str
    created: datetime
    model: str | None = None  # path of the model inside a directory; found by extension when None
    model_format: ModelFormat | None = None  # from the extension when None
    description: str = ""
    processing: ProcessingSpec = field(default_factory=ProcessingSpec)
    resources: ResourceHints = field(default_factory=ResourceHints)
    execution_providers: Sequence[str] = ()
    inputs: Sequence[TensorSpec] | None = None  # overrides what is read from the model (tflite)
    outputs: Sequence[TensorSpec] | None = None


@dataclass(frozen=True)
class BuiltBundle:
    """The result of a build: where the tar is, its sha256 (the bundle's identity) and manifest."""

    path: Path
    sha256: str
    size: int
    manifest: BundleManifest


def created_from(
    value: str | None, *, source_date_epoch: str | None, now: Callable[[], datetime]
) -> datetime:
    """The build time: ``value`` (ISO 8601 or seconds since the epoch), else SOURCE_DATE_EPOCH, else now."""
    for raw, what in ((value, "--created"), (source_date_epoch, "SOURCE_DATE_EPOCH")):
        if raw is None or raw == "":
            continue
        try:
            if raw.strip().isdigit():
                return datetime.fromtimestamp(int(raw), tz=UTC)
            parsed = datetime.fromisoformat(raw)
        except (ValueError, OverflowError) as exc:
            raise BundleInputError(
                f"{what}: {raw!r} is neither seconds since the epoch nor an ISO 8601 time", field=what
            ) from exc
        if parsed.tzinfo is None:
            raise BundleInputError(
                f"{what}: {raw!r} needs a time zone (e.g. 2026-01-01T00:00:00Z)", field=what
            )
        return parsed.astimezone(UTC).replace(microsecond=0)
    return now().astimezone(UTC).replace(microsecond=0)


def _load_table(path: Path, what: str) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise BundleNotFoundError(f"{path}: {what} not found", path=str(path)) from exc
    try:
        return json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleInputError(
            f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}"
        ) from exc


def _validated(model: type[_M], data: Any, path: Path) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise BundleInputError(f"{path}: {where}: {first['msg']}", field=where) from exc


def load_processing(path: Path) -> ProcessingSpec:
    """A processing spec from a TOML or JSON file with ``pre`` and ``post`` lists of {op, args}."""
    return _validated(ProcessingSpec, _load_table(path, "processing spec"), path)


class SignatureSpec(BaseModel):
    """A model signature given by hand (TFLite models, or to override what the graph says)."""

    model_config = ConfigDict(extra="forbid")

    inputs: list[TensorSpec] | None = None
    outputs: list[TensorSpec] | None = None


def load_signature(path: Path) -> SignatureSpec:
    """A signature from a TOML or JSON file: ``inputs`` and ``outputs`` lists of {name, dtype, shape}."""
    return _validated(SignatureSpec, _load_table(path, "signature"), path)


def _collect(source: Path) -> dict[str, Path]:
    """Bundle path → source file, for a single model file or every regular file under a directory."""
    if not source.exists():
        raise BundleNotFoundError(f"{source}: no such model file or directory", path=str(source))
    if source.is_file():
        return {source.name: source}
    files: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(source, followlinks=False):
        dirnames.sort()
        for entry in (*dirnames, *filenames):
            p = Path(dirpath, entry)
            if p.is_symlink():
                raise BundleInputError(
                    f"{p}: symlinks cannot go into a bundle; copy the file instead", path=str(p)
                )
        for name in filenames:
            p = Path(dirpath, name)
            rel = p.relative_to(source).as_posix()
            if not p.is_file():
                raise BundleInputError(f"{p}: only regular files can go into a bundle", path=str(p))
            if rel == MANIFEST_NAME:
                raise BundleInputError(
                    f"{p}: {MANIFEST_NAME} is written by the build; remove it", path=str(p)
                )
            if check_relative_path(rel) is not None:
                raise BundleInputError(f"{p}: {rel!r} is not a portable bundle path", path=str(p))
            files[rel] = p
    if not files:
        raise BundleInputError(f"{source}: the directory holds no files", path=str(source))
    return files


def _pick_model(files: Mapping[str, Path], options: BuildOptions) -> tuple[str, ModelFormat]:
    if options.model is not None:
        if options.model not in files:
            raise BundleInputError(
                f"--model: {options.model!r} is not a file of the bundle (have: {', '.join(sorted(files))})",
                field="model",
            )
        path = options.model
    else:
        candidates = sorted(p for p in files if Path(p).suffix in _FORMATS)
        if len(candidates) != 1:
            raise BundleInputError(
                f"--model: expected exactly one .onnx or .tflite file, found {len(candidates)}: "
                f"{', '.join(candidates) or 'none'}; name it with --model",
                field="model",
            )
        path = candidates[0]
    fmt = options.model_format or _FORMATS.get(Path(path).suffix)
    if fmt is None:
        raise BundleInputError(
            f"--format: cannot tell the format of {path!r}; use onnx or tflite", field="format"
        )
    return path, fmt


def build_manifest(files: Mapping[str, Path], options: BuildOptions) -> BundleManifest:
    """Hash every file, read the model signature and validate the manifest."""
    model_path, fmt = _pick_model(files, options)
    entries = []
    for rel in sorted(files):
        digest, size = sha256_file(files[rel])
        entries.append(FileEntry(path=rel, sha256=digest, size=size))
    inputs: list[TensorSpec] = []
    outputs: list[TensorSpec] = []
    opset = None
    if fmt == "onnx":
        from edgefleet.bundle.signature import read_onnx_signature

        sig = read_onnx_signature(files[model_path])
        inputs, outputs, opset = sig.inputs, sig.outputs, sig.opset
    if options.inputs is not None:
        inputs = list(options.inputs)
    if options.outputs is not None:
        outputs = list(options.outputs)
    body = {
        "name": options.name,
        "version": options.version,
        "created": options.created,
        "description": options.description,
        "files": entries,
        "model": ModelSpec(path=model_path, format=fmt, inputs=inputs, outputs=outputs, opset=opset),
        "processing": options.processing,
        "resources": options.resources,
        "execution_providers": list(options.execution_providers),
    }
    try:
        return BundleManifest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        field_name = {"name": "--name", "version": "--version"}.get(where, where)
        raise BundleInputError(f"{field_name}: {first['msg']}", field=where) from exc


def _tarinfo(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = FILE_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


class _HashingReader:
    """Wraps a file so that what tarfile copies is hashed on the way."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.digest = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.digest.update(data)
        return data


class _HashingWriter:
    """Wraps the output so that the tar's sha256 is computed as it is written."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self._f.write(data)

    def tell(self) -> int:
        return self.size


def write_bundle_tar(out: IO[bytes], manifest: BundleManifest, files: Mapping[str, Path]) -> None:
    """Write the tar: ``bundle.json`` first, then each listed file in manifest order.

    Refuses (``bundle.invalid_input``) a file whose bytes changed since it was hashed.
    """
    mtime = int(manifest.created.timestamp())
    data = manifest.canonical_bytes()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_tarinfo(MANIFEST_NAME, len(data), mtime), io.BytesIO(data))
        for entry in manifest.files:
            with files[entry.path].open("rb") as f:
                reader = _HashingReader(f)
                tar.addfile(_tarinfo(entry.path, entry.size, mtime), reader)
            if reader.digest.hexdigest() != entry.sha256:
                raise BundleInputError(
                    f"{files[entry.path]}: changed while the bundle was built", path=entry.path
                )


def build_bundle(
    source: Path, output: Path, options: BuildOptions, *, overwrite: bool = False
) -> BuiltBundle:
    """Build the bundle of ``source`` (a model file or a directory) into ``output`` (a tar), atomically."""
    if output.exists() and not overwrite:
        raise BundleConflictError(
            f"{output}: exists already (use --force to replace it)", code="bundle.exists"
        )
    if options.created.timestamp() < 0:
        raise BundleInputError("--created: must not be before 1970-01-01", field="created")
    files = _collect(source)
    manifest = build_manifest(files, options)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            out = _HashingWriter(f)
            write_bundle_tar(out, manifest, files)  # type: ignore[arg-type]  # write() and tell() suffice
            f.flush()
            os.fsync(f.fileno())
        tmp.chmod(FILE_MODE)
        tmp.replace(output)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BundleWriteError(
            f"{output}: cannot write the bundle: {exc.strerror or exc}", path=str(output)
        ) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return BuiltBundle(path=output, sha256=out.digest.hexdigest(), size=out.size, manifest=manifest)
