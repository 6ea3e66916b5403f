"""Tensor bytes and values in and out of the KServe v2 wire formats (shared by REST and gRPC).

Fixed-size datatypes are raw little-endian row-major bytes, read with ``numpy.frombuffer`` (no
copy). ``BYTES`` elements are each a 4-byte little-endian length followed by the bytes; they are
handed to ONNX Runtime as UTF-8 strings (its string tensors).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgefleet.runtime.datatypes import to_numpy
from edgefleet.serving.errors import RequestError

__all__ = ["check_shape", "dtype_of", "from_raw", "from_values", "to_raw", "to_values"]

_LEN = struct.Struct("<I")


def dtype_of(name: str, datatype: str) -> np.dtype[Any]:
    dtype = to_numpy(datatype)
    if dtype is None:
        raise RequestError(
            f"input {name!r}: unknown datatype {datatype!r}",
            code="infer.bad_datatype",
            tensor=name,
            got=datatype,
        )
    return dtype


def check_shape(name: str, shape: Sequence[Any]) -> tuple[int, ...]:
    if not isinstance(shape, list | tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise RequestError(
            f"input {name!r}: shape must be a list of non-negative integers",
            code="serve.bad_request",
            tensor=name,
            field="shape",
        )
    return tuple(int(d) for d in shape)


def from_raw(name: str, datatype: str, shape: tuple[int, ...], raw: bytes | memoryview) -> np.ndarray:
    """Decode one tensor's raw bytes; the byte count must match the shape exactly."""
    dtype = dtype_of(name, datatype)
    count = math.prod(shape)
    if datatype == "BYTES":
        return _bytes_elements(name, raw, count).reshape(shape)
    if len(raw) != count * dtype.itemsize:
        raise RequestError(
            f"input {name!r}: {len(raw)} bytes of data for shape {list(shape)} of {datatype}; "
            f"expected {count * dtype.itemsize}",
            code="infer.size_mismatch",
            tensor=name,
            expected=count * dtype.itemsize,
            got=len(raw),
        )
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).reshape(shape)


def _bytes_elements(name: str, raw: bytes | memoryview, count: int) -> np.ndarray:
    view = memoryview(raw)
    out = np.empty(count, dtype=np.object_)
    pos = 0
    for i in range(count):
        if pos + 4 > len(view):
            raise RequestError(
                f"input {name!r}: BYTES data ends before element {i}", code="infer.size_mismatch", tensor=name
            )
        (n,) = _LEN.unpack_from(view, pos)
        pos += 4
        if pos + n > len(view):
            raise RequestError(
                f"input {name!r}: BYTES element {i} runs past the data",
                code="infer.size_mismatch",
                tensor=name,
            )
        out[i] = bytes(view[pos : pos + n]).decode(errors="replace")
        pos += n
    if pos != len(view):
        raise RequestError(
            f"input {name!r}: {len(view) - pos} bytes left after {count} BYTES elements",
            code="infer.size_mismatch",
            tensor=name,
        )
    return out


def from_values(name: str, datatype: str, shape: tuple[int, ...], values: Any) -> np.ndarray:
    """Decode JSON values (flat or nested lists) into an array of ``shape``."""
    dtype = dtype_of(name, datatype)
    try:
        if datatype == "BYTES":
            flat = np.asarray(values, dtype=np.object_).reshape(-1)
            array = np.array(
                [v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in flat],
                dtype=np.object_,
            )
        else:
            array = np.asarray(values, dtype=dtype)
    except (ValueError, TypeError) as exc:
        raise RequestError(
            f"input {name!r}: data is not a list of {datatype} values ({exc})",
            code="infer.bad_data",
            tensor=name,
        ) from exc
    if array.size != math.prod(shape):
        raise RequestError(
            f"input {name!r}: {array.size} values for shape {list(shape)}; expected {math.prod(shape)}",
            code="infer.size_mismatch",
            tensor=name,
            expected=math.prod(shape),
            got=int(array.size),
        )
    return array.reshape(shape)


def to_raw(array: np.ndarray, datatype: str) -> bytes:
    """One output's bytes for the binary extension or ``raw_output_contents``."""
    if datatype == "BYTES":
        parts = []
        for item in array.reshape(-1):
            data = item if isinstance(item, bytes) else str(item).encode()
            parts.append(_LEN.pack(len(data)))
            parts.append(data)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def to_values(array: np.ndarray, datatype: str) -> list[Any]:
    """One output as a flat JSON list."""
    flat = array.reshape(-1)
    if datatype == "BYTES":
        return [v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in flat]
    values: list[Any] = flat.tolist()
    return values
