"""Wire codecs: raw bytes and JSON values for every datatype, REST bodies in and out."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgefleet.serving.codec import from_raw, from_values, to_raw, to_values
from edgefleet.serving.errors import RequestError
from edgefleet.serving.rest import decode_request, encode_response
from edgefleet.serving.types import InferOutput, InferResponse


@pytest.mark.unit
@pytest.mark.parametrize(
    ("datatype", "array"),
    [
        ("FP32", np.arange(6, dtype=np.float32).reshape(2, 3)),
        ("FP16", np.arange(6, dtype=np.float16).reshape(2, 3)),
        ("FP64", np.arange(6, dtype=np.float64).reshape(2, 3)),
        ("INT8", np.arange(-3, 3, dtype=np.int8).reshape(2, 3)),
        ("UINT8", np.arange(6, dtype=np.uint8).reshape(2, 3)),
        ("INT64", np.arange(6, dtype=np.int64).reshape(2, 3)),
        ("BOOL", np.array([[True, False, True], [False, True, False]])),
    ],
)
def test_raw_and_values_round_trip(datatype: str, array: np.ndarray) -> None:
    raw = to_raw(array, datatype)
    assert raw == array.tobytes()
    np.testing.assert_array_equal(from_raw("t", datatype, array.shape, raw), array)
    np.testing.assert_array_equal(from_values("t", datatype, array.shape, to_values(array, datatype)), array)


@pytest.mark.unit
def test_bytes_elements_are_length_prefixed() -> None:
    array = np.array(["ab", "", "ü"], dtype=np.object_)
    raw = to_raw(array, "BYTES")
    assert raw == b"\x02\x00\x00\x00ab\x00\x00\x00\x00\x02\x00\x00\x00\xc3\xbc"
    assert from_raw("s", "BYTES", (3,), raw).tolist() == ["ab", "", "ü"]
    assert to_values(array, "BYTES") == ["ab", "", "ü"]
    with pytest.raises(RequestError) as err:
        from_raw("s", "BYTES", (3,), raw[:-1])
    assert err.value.code == "infer.size_mismatch"


@pytest.mark.unit
def test_size_and_value_errors_name_the_tensor() -> None:
    with pytest.raises(RequestError) as err:
        from_raw("img", "FP32", (1, 4), b"\x00" * 15)
    assert err.value.fields == {"tensor": "img", "expected": 16, "got": 15}
    with pytest.raises(RequestError) as err2:
        from_values("img", "FP32", (2,), ["a", "b"])
    assert err2.value.code == "infer.bad_data"
    with pytest.raises(RequestError) as err3:
        from_values("img", "FP32", (3,), [1, 2])
    assert err3.value.code == "infer.size_mismatch"


@pytest.mark.unit
def test_rest_body_with_mixed_json_and_binary_inputs() -> None:
    """One input as JSON, one binary; outputs binary by default when binary_data_output is set."""
    b = np.array([[1, 2]], np.int64)
    header = json.dumps(
        {
            "id": "7",
            "inputs": [
                {"name": "a", "datatype": "FP32", "shape": [1, 2], "data": [[0.5, 1.5]]},
                {"name": "b", "datatype": "INT64", "shape": [1, 2], "parameters": {"binary_data_size": 16}},
            ],
            "outputs": [{"name": "y"}, {"name": "z", "parameters": {"binary_data": False}}],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    request = decode_request("m", "", header + b.tobytes(), len(header))
    assert request.id == "7"
    assert request.inputs[0].data.tolist() == [[0.5, 1.5]]
    assert request.inputs[1].data.tolist() == [[1, 2]]
    response = InferResponse(
        "m",
        "1",
        [
            InferOutput("y", "FP32", (1, 2), np.array([[1, 2]], np.float32)),
            InferOutput("z", "INT64", (1,), np.array([3], np.int64)),
        ],
        "7",
    )
    body, length = encode_response(request, response)
    assert length is not None
    head = json.loads(body[:length])
    assert head["id"] == "7"
    assert head["outputs"][0]["parameters"] == {"binary_data_size": 8}
    assert head["outputs"][1]["data"] == [3]
    np.testing.assert_array_equal(np.frombuffer(body[length:], np.float32), [1, 2])


@pytest.mark.unit
def test_leftover_binary_bytes_are_rejected() -> None:
    header = b'{"inputs": []}'
    with pytest.raises(RequestError, match="belong to no input"):
        decode_request("m", "", header + b"xx", len(header))
