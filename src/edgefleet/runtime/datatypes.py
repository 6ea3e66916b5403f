"""Tensor element types: KServe v2 datatype names, numpy dtypes and ONNX Runtime type strings."""

from __future__ import annotations

from typing import Final

import numpy as np

__all__ = ["KSERVE_TO_NUMPY", "ORT_TO_KSERVE", "from_numpy", "from_ort", "to_numpy"]

KSERVE_TO_NUMPY: Final[dict[str, np.dtype[np.generic]]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}

_NUMPY_TO_KSERVE: Final[dict[np.dtype[np.generic], str]] = {v: k for k, v in KSERVE_TO_NUMPY.items()}

ORT_TO_KSERVE: Final[dict[str, str]] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


def from_ort(ort_type: str) -> str | None:
    """The KServe datatype of an ONNX Runtime type string, ``None`` when v2 has no equivalent."""
    return ORT_TO_KSERVE.get(ort_type)


def to_numpy(datatype: str) -> np.dtype[np.generic] | None:
    """The numpy dtype of a KServe datatype name, ``None`` for an unknown name."""
    return KSERVE_TO_NUMPY.get(datatype)


def from_numpy(dtype: np.dtype[np.generic]) -> str | None:
    """The KServe datatype of a numpy dtype (unicode and bytes strings are ``BYTES``)."""
    if dtype.kind in "OSU":
        return "BYTES"
    return _NUMPY_TO_KSERVE.get(dtype.newbyteorder("=") if dtype.byteorder == ">" else dtype)
