"""What to send: tensor specs from a model's metadata, and the data (random or from .npy/.npz).

Shapes follow one rule: ``--shape NAME=1x3x640x640`` gives an input's full shape; ``--batch B``
then replaces the first dimension whenever the model declares it dynamic. Any other dynamic
dimension without an override is an error that names the input and the dimension.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgefleet.runtime.datatypes import KSERVE_TO_NUMPY, ORT_TO_KSERVE
from edgefleet.runtime.loadgen.errors import BenchInputError

__all__ = [
    "ORT_TO_V2",
    "V2_TO_NUMPY",
    "TensorSpec",
    "generate_inputs",
    "load_input_file",
    "parse_shape_overrides",
    "resolve_shape",
    "v2_datatype",
]

V2_TO_NUMPY = KSERVE_TO_NUMPY
"""KServe v2 datatypes and the numpy dtype that carries each (the runtime's table)."""

ORT_TO_V2 = ORT_TO_KSERVE
"""ONNX Runtime's type strings and their KServe v2 datatype (the runtime's table)."""


@dataclass(frozen=True)
class TensorSpec:
    """One model input as its metadata declares it; ``-1`` marks a dynamic dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(V2_TO_NUMPY[self.datatype])


def v2_datatype(ort_type: str, *, name: str) -> str:
    """The KServe v2 datatype of an ONNX Runtime type string, or an error naming the tensor."""
    try:
        return ORT_TO_V2[ort_type]
    except KeyError:
        raise BenchInputError(
            f"input {name!r} has type {ort_type}, which has no KServe v2 datatype",
            code="bench.unsupported_dtype",
            input=name,
            allowed=sorted(ORT_TO_V2),
        ) from None


def parse_shape_overrides(items: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """Parse ``NAME=1x3x224x224`` options (``,`` also separates dimensions)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for item in items:
        name, sep, dims = item.partition("=")
        parts = [p for p in dims.replace(",", "x").split("x") if p.strip()]
        try:
            shape = tuple(int(p) for p in parts)
        except ValueError:
            shape = ()
        if not sep or not name or not shape or any(d <= 0 for d in shape):
            raise BenchInputError(
                f"--shape {item!r} is not NAME=D1xD2x... with positive integer dimensions",
                code="bench.invalid_shape",
                option="--shape",
                value=item,
            )
        shapes[name.strip()] = shape
    return shapes


def resolve_shape(spec: TensorSpec, batch: int, override: Sequence[int] | None = None) -> tuple[int, ...]:
    """The concrete shape to send for ``spec`` at batch size ``batch``."""
    declared = spec.shape
    if override is not None:
        if len(override) != len(declared):
            raise BenchInputError(
                f"--shape for input {spec.name!r} has {len(override)} dimensions, the model declares "
                f"{len(declared)} ({_fmt(declared)})",
                code="bench.invalid_shape",
                input=spec.name,
                expected=_fmt(declared),
            )
        for i, (want, have) in enumerate(zip(declared, override, strict=True)):
            if want >= 0 and want != have:
                raise BenchInputError(
                    f"--shape for input {spec.name!r} sets dimension {i} to {have}, the model fixes it "
                    f"at {want} ({_fmt(declared)})",
                    code="bench.invalid_shape",
                    input=spec.name,
                    expected=_fmt(declared),
                )
        base = list(override)
    else:
        base = list(declared)
    if declared and declared[0] < 0:
        base[0] = batch
    elif declared and batch != 1 and declared[0] != batch:
        raise BenchInputError(
            f"input {spec.name!r} has a fixed first dimension {declared[0]} ({_fmt(declared)}), "
            f"so --batch {batch} cannot apply",
            code="bench.batch_fixed",
            input=spec.name,
        )
    unresolved = [i for i, d in enumerate(base) if d < 0]
    if unresolved:
        example = "x".join("1" if d < 0 else str(d) for d in base)
        raise BenchInputError(
            f"input {spec.name!r} has dynamic dimension(s) {unresolved} ({_fmt(declared)}): "
            f"give its shape, e.g. --shape {spec.name}={example}",
            code="bench.dynamic_shape",
            input=spec.name,
        )
    return tuple(base)


def _random(spec: TensorSpec, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray[Any, Any]:
    dtype = spec.dtype
    if spec.datatype == "BYTES":
        return np.full(shape, b"edgefleet", dtype=np.object_)
    if spec.datatype == "BOOL":
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if np.issubdtype(dtype, np.floating):
        return rng.random(size=shape, dtype=np.float32).astype(dtype)
    return rng.integers(0, 10, size=shape).astype(dtype)


def generate_inputs(
    specs: Sequence[TensorSpec],
    *,
    batch: int = 1,
    overrides: Mapping[str, Sequence[int]] | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray[Any, Any]]:
    """Random data of the right dtype and shape for every input (floats uniform in [0, 1))."""
    if batch < 1:
        raise BenchInputError(f"--batch must be >= 1, got {batch}", code="bench.invalid_batch")
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - {s.name for s in specs})
    if unknown:
        raise BenchInputError(
            f"--shape names unknown input(s) {unknown}; the model's inputs are {[s.name for s in specs]}",
            code="bench.unknown_input",
            inputs=unknown,
        )
    rng = np.random.default_rng(seed)
    return {s.name: _random(s, resolve_shape(s, batch, overrides.get(s.name)), rng) for s in specs}


def load_input_file(path: Path, specs: Sequence[TensorSpec]) -> dict[str, np.ndarray[Any, Any]]:
    """Inputs from ``path``: an ``.npy`` for a single-input model, or an ``.npz`` keyed by input name.

    Each array must have the declared rank and dtype and match every fixed dimension.
    """
    if not path.is_file():
        raise BenchInputError(f"input file {path} does not exist", code="bench.input_file", path=str(path))
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BenchInputError(
            f"input file {path} is not a readable .npy/.npz: {exc}", code="bench.input_file", path=str(path)
        ) from exc
    if isinstance(loaded, np.ndarray):
        if len(specs) != 1:
            raise BenchInputError(
                f"{path} holds one array but the model has {len(specs)} inputs; use an .npz keyed by "
                f"input name ({[s.name for s in specs]})",
                code="bench.input_file",
                path=str(path),
            )
        arrays = {specs[0].name: loaded}
    else:
        with loaded:
            arrays = {k: loaded[k] for k in loaded.files}
    wanted = {s.name for s in specs}
    if set(arrays) != wanted:
        raise BenchInputError(
            f"{path} holds arrays {sorted(arrays)}, the model's inputs are {sorted(wanted)}",
            code="bench.input_file",
            path=str(path),
        )
    for spec in specs:
        _check_array(spec, arrays[spec.name], path)
    return arrays


def _check_array(spec: TensorSpec, array: np.ndarray[Any, Any], path: Path) -> None:
    ok_dtype = array.dtype == spec.dtype or (spec.datatype == "BYTES" and array.dtype.kind in "OSU")
    if not ok_dtype:
        raise BenchInputError(
            f"array {spec.name!r} in {path} is {array.dtype}, "
            f"the model expects {spec.datatype} ({spec.dtype})",
            code="bench.input_dtype",
            input=spec.name,
        )
    fits = len(array.shape) == len(spec.shape) and all(
        want < 0 or want == have for want, have in zip(spec.shape, array.shape, strict=True)
    )
    if not fits:
        raise BenchInputError(
            f"array {spec.name!r} in {path} has shape {_fmt(array.shape)}, "
            f"the model expects {_fmt(spec.shape)}",
            code="bench.input_shape",
            input=spec.name,
        )


def _fmt(shape: Sequence[int]) -> str:
    return "[" + ",".join("?" if d < 0 else str(d) for d in shape) + "]"
