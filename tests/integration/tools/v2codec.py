"""The KServe v2 binary tensor extension, written from the spec, to check tritonclient against.

A body is a JSON header, then the raw little-endian row-major bytes of every tensor that has
``parameters.binary_data_size``, in the header's order; ``Inference-Header-Content-Length`` gives
the header's length. Tensors without that parameter carry a flat ``data`` list instead.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

V2_DTYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "INT8": np.int8,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
NUMPY_TO_V2 = {np.dtype(v): k for k, v in V2_DTYPES.items()}


def decode(body: bytes, header_length: int | None, key: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Split a body into its JSON header and the tensors listed under ``key`` (inputs or outputs)."""
    size = len(body) if header_length is None else header_length
    header = json.loads(body[:size])
    offset = size
    tensors: dict[str, np.ndarray] = {}
    for item in header.get(key, []):
        dtype = np.dtype(V2_DTYPES[item["datatype"]]).newbyteorder("<")
        shape = [int(d) for d in item["shape"]]
        nbytes = (item.get("parameters") or {}).get("binary_data_size")
        if nbytes is not None:
            tensors[item["name"]] = np.frombuffer(
                body, dtype=dtype, count=int(nbytes) // dtype.itemsize, offset=offset
            )
            tensors[item["name"]] = tensors[item["name"]].reshape(shape)
            offset += int(nbytes)
        else:
            tensors[item["name"]] = np.asarray(item["data"], dtype=dtype).reshape(shape)
    return header, tensors


def encode(
    key: str, tensors: dict[str, np.ndarray], *, binary: bool, extra: dict[str, Any] | None = None
) -> tuple[bytes, int | None]:
    """A body carrying ``tensors`` under ``key``; returns (body, header length or None for pure JSON)."""
    items = []
    blobs = []
    for name, array in tensors.items():
        item: dict[str, Any] = {
            "name": name,
            "datatype": NUMPY_TO_V2[array.dtype],
            "shape": list(array.shape),
        }
        if binary:
            raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
            item["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            item["data"] = array.reshape(-1).tolist()
        items.append(item)
    header = json.dumps({**(extra or {}), key: items}).encode()
    if not binary:
        return header, None
    return header + b"".join(blobs), len(header)
