"""``bundle.json``: the manifest of a bundle, as pydantic models, and its canonical bytes.

A bundle is an uncompressed tar whose first entry is ``bundle.json`` and whose other entries are
exactly the files the manifest lists (path, sha256, size). The manifest names the model, its
input/output signature, the pre/post-processing a pipeline applies, resource hints and the preferred
ONNX Runtime execution providers. ``schema_version`` changes only when a reader would misread a
newer manifest; readers refuse versions they do not know.

The JSON Schema published in ``docs/bundle.schema.json`` is :func:`json_schema` (a test keeps it
in step).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import PurePosixPath
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    field_validator,
    model_validator,
)

from edgefleet.bundle.errors import BundleError, BundleInputError

__all__ = [
    "MANIFEST_NAME",
    "MAX_MANIFEST_BYTES",
    "SCHEMA_VERSION",
    "BundleManifest",
    "FileEntry",
    "ModelFormat",
    "ModelSpec",
    "ModelVariant",
    "ProcessingSpec",
    "ProcessingStep",
    "ResourceHints",
    "TensorSpec",
    "check_relative_path",
    "json_schema",
    "parse_manifest",
]

SCHEMA_VERSION: Final = 1
MANIFEST_NAME: Final = "bundle.json"
MAX_MANIFEST_BYTES: Final = 1 << 20

# Semantic Versioning 2.0.0, the regular expression semver.org recommends.
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_IDENT = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"
_SHA256 = r"^[0-9a-f]{64}$"
_MAX_PATH = 1024
_MAX_COMPONENT = 255

ModelFormat = Literal["onnx", "tflite"]

_Model = ConfigDict(extra="forbid", frozen=True)


def check_relative_path(path: str) -> str | None:
    """The error code for a path that may not appear in a bundle, or None when it is safe.

    Safe: relative, POSIX separators, no empty, ``.`` or ``..`` component, no NUL or backslash,
    at most 1024 bytes and 255 per component.
    """
    if path.startswith("/"):
        return "bundle.path_absolute"
    parts = path.split("/")
    if (
        not path
        or "\x00" in path
        or "\\" in path
        or len(path.encode()) > _MAX_PATH
        or any(p in {"", ".", ".."} or len(p.encode()) > _MAX_COMPONENT for p in parts)
    ):
        return "bundle.path_traversal"
    return None


class FileEntry(BaseModel):
    """One file of the bundle: where it is, its sha256 and its size in bytes."""

    model_config = _Model

    path: str = Field(description="Relative POSIX path inside the bundle; no '..', '.', or empty parts.")
    sha256: str = Field(pattern=_SHA256, description="Lower-case hex sha256 of the file's bytes.")
    size: int = Field(ge=0, description="Size in bytes.")

    @field_validator("path")
    @classmethod
    def _safe_path(cls, value: str) -> str:
        if check_relative_path(value) is not None or value == MANIFEST_NAME:
            raise ValueError(f"{value!r} is not a safe relative path (or is the reserved {MANIFEST_NAME})")
        return value


Dim = Annotated[int | str | None, Field(description="A fixed size, a symbolic name, or null (unknown).")]


class TensorSpec(BaseModel):
    """An input or output of the model: name, element type and shape."""

    model_config = _Model

    name: str = Field(min_length=1, max_length=256)
    dtype: str = Field(pattern=r"^[a-z0-9_]{1,32}$", description="Element type, e.g. float32, int64, uint8.")
    shape: list[Dim] | None = Field(default=None, description="Dimensions; null when the rank is unknown.")


class ModelSpec(BaseModel):
    """The model file and the signature read from it."""

    model_config = _Model

    path: str = Field(description="Path of the model among `files`.")
    format: ModelFormat = Field(description="onnx, or tflite (signature optional).")
    inputs: list[TensorSpec] = Field(default_factory=list)
    outputs: list[TensorSpec] = Field(default_factory=list)
    opset: int | None = Field(default=None, ge=1, description="Default-domain ONNX opset, when known.")


class ModelVariant(BaseModel):
    """Another file of the same model, built for one target (e.g. an ``_edgetpu.tflite`` for Coral)."""

    model_config = _Model

    path: str = Field(description="Path of the variant among `files`.")
    format: ModelFormat = Field(description="onnx or tflite.")
    target: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,31}$",
        description="What it is built for: cpu, edgetpu, vx, teflon, ethos-u, cuda, tensorrt, openvino, "
        "hailort, rknn, qnn.",
    )


class ProcessingStep(BaseModel):
    """One step of a pipeline: an operation name and its arguments (JSON values)."""

    model_config = _Model

    op: str = Field(pattern=_IDENT, description="Operation name, e.g. resize, normalize, softmax, topk.")
    args: dict[Annotated[str, Field(pattern=_IDENT)], JsonValue] = Field(default_factory=dict)


class ProcessingSpec(BaseModel):
    """Pre- and post-processing a pipeline applies around the model, in order."""

    model_config = _Model

    pre: list[ProcessingStep] = Field(default_factory=list, max_length=64)
    post: list[ProcessingStep] = Field(default_factory=list, max_length=64)


class ResourceHints(BaseModel):
    """What the bundle needs to run well; the scheduler treats these as minimums."""

    model_config = _Model

    min_memory_bytes: int | None = Field(default=None, ge=0, description="Minimum memory, bytes.")
    cpus: float | None = Field(default=None, gt=0, le=1024, description="CPUs wanted (fractions allowed).")


class BundleManifest(BaseModel):
    """The whole ``bundle.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="edgefleet bundle.json")

    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, description="Format version of this file.")
    name: str = Field(pattern=_NAME, description="Bundle name: lower case, digits, '.', '_', '-'.")
    version: str = Field(description="Semantic version (semver.org 2.0.0), e.g. 1.4.0 or 2.0.0-rc.1.")
    created: AwareDatetime = Field(description="Build time (SOURCE_DATE_EPOCH for reproducible builds).")
    description: str = Field(default="", max_length=4096)
    files: list[FileEntry] = Field(min_length=1, max_length=10_000)
    model: ModelSpec
    processing: ProcessingSpec = Field(default_factory=ProcessingSpec)
    resources: ResourceHints = Field(default_factory=ResourceHints)
    execution_providers: list[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9]{0,63}$")]] = Field(
        default_factory=list,
        description="Preferred ONNX Runtime execution providers, best first (e.g. CPUExecutionProvider).",
    )
    variants: list[ModelVariant] = Field(
        default_factory=list,
        max_length=64,
        description="Other files of the model for other targets; the device picks the one its hardware "
        "runs best (`model` runs everywhere). Absent in bundles without variants.",
    )

    @field_validator("version")
    @classmethod
    def _semver(cls, value: str) -> str:
        if not _SEMVER.match(value):
            raise ValueError(f"{value!r} is not a semantic version (MAJOR.MINOR.PATCH[-pre][+build])")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> BundleManifest:
        paths = [f.path for f in self.files]
        if len(set(paths)) != len(paths):
            raise ValueError("files: a path is listed twice")
        if paths != sorted(paths):
            raise ValueError("files: paths must be sorted")
        as_set = set(paths)
        for p in paths:
            for parent in PurePosixPath(p).parents:
                if str(parent) in as_set:
                    raise ValueError(f"files: {str(parent)!r} is a file and a directory of {p!r}")
        if self.model.path not in as_set:
            raise ValueError(f"model.path: {self.model.path!r} is not among files")
        for n, variant in enumerate(self.variants):
            if variant.path not in as_set:
                raise ValueError(f"variants.{n}.path: {variant.path!r} is not among files")
        return self

    @property
    def total_size(self) -> int:
        """Sum of the sizes of every listed file."""
        return sum(f.size for f in self.files)

    def file(self, path: str) -> FileEntry | None:
        """The entry for ``path``, or None."""
        return next((f for f in self.files if f.path == path), None)

    def canonical_bytes(self) -> bytes:
        """The exact bytes written as ``bundle.json``: sorted keys, two-space indent, final newline."""
        body = self.model_dump(mode="json")
        if not body.get("variants"):
            body.pop("variants", None)  # bundles without variants keep their exact bytes
        return (json.dumps(body, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def parse_manifest(data: bytes, *, source: str = MANIFEST_NAME, for_build: bool = False) -> BundleManifest:
    """Parse and validate ``bundle.json`` bytes.

    Raises ``bundle.manifest_invalid`` (a :class:`BundleError`) when reading a bundle, or
    ``bundle.invalid_input`` when ``for_build`` (the data came from the user, not from an archive).
    """
    try:
        return BundleManifest.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        reason = f"{source}: {where}: {first['msg']}"
        if for_build:
            raise BundleInputError(reason, field=where) from exc
        raise BundleError(reason, code="bundle.manifest_invalid", field=where) from exc


def manifest_created(created: datetime) -> datetime:
    """``created`` truncated to whole seconds, as the manifest and tar mtimes store it."""
    return created.replace(microsecond=0)


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``bundle.json``."""
    schema = BundleManifest.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://edgefleet.dev/schemas/bundle.schema.json"
    return schema
