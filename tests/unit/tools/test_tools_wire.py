"""The KServe v2 wire formats the bench sends, checked against the spec from both directions.

tritonclient is the protocol implementation the bench uses; these tests pin what it puts on the
wire for the tensors the bench builds (binary tensor extension and plain JSON) and that it reads
back responses built from the spec, including FP16, which only the binary form can carry.
"""

import json

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from edgefleet.runtime.loadgen.targets import classify_error
from tests.integration.tools.v2codec import decode, encode


def _request(arrays: dict[str, np.ndarray], *, binary: bool) -> tuple[bytes, int | None]:
    inputs = []
    for name, arr in arrays.items():
        datatype = {np.float32: "FP32", np.float16: "FP16", np.int64: "INT64", np.uint8: "UINT8"}[
            arr.dtype.type
        ]
        item = httpclient.InferInput(name, list(arr.shape), datatype)
        item.set_data_from_numpy(arr, binary_data=binary)
        inputs.append(item)
    outputs = [httpclient.InferRequestedOutput("y", binary_data=binary)]
    body, json_size = httpclient.InferenceServerClient.generate_request_body(inputs, outputs=outputs)
    return (body if isinstance(body, bytes) else body.encode()), json_size


@pytest.mark.unit
def test_binary_request_carries_raw_little_endian_bytes_after_the_header() -> None:
    """binary_data_size per input, header length returned, bytes equal to the arrays' own."""
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    ids = np.array([[5, 7]], dtype=np.int64)
    body, json_size = _request({"x": x, "ids": ids}, binary=True)
    assert json_size is not None
    header, tensors = decode(body, json_size, "inputs")
    sizes = {i["name"]: i["parameters"]["binary_data_size"] for i in header["inputs"]}
    assert sizes == {"x": x.nbytes, "ids": ids.nbytes}
    assert len(body) == json_size + x.nbytes + ids.nbytes
    assert np.array_equal(tensors["x"], x)
    assert np.array_equal(tensors["ids"], ids)
    assert header["outputs"] == [{"name": "y", "parameters": {"binary_data": True}}]


@pytest.mark.unit
def test_json_request_has_flat_data_and_no_header_length() -> None:
    """Plain JSON (rest-json) carries row-major flat data and no Inference-Header-Content-Length."""
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    body, json_size = _request({"x": x}, binary=False)
    assert json_size is None
    header = json.loads(body)
    assert header["inputs"][0]["data"] == x.reshape(-1).tolist()
    _, tensors = decode(body, None, "inputs")
    assert np.array_equal(tensors["x"], x)


@pytest.mark.unit
def test_fp16_round_trips_only_in_binary() -> None:
    """FP16 travels as 2-byte halves in the binary form and comes back bit-exact."""
    x = (np.arange(8, dtype=np.float16) / 3).reshape(1, 8)
    body, json_size = _request({"x": x}, binary=True)
    _, tensors = decode(body, json_size, "inputs")
    assert tensors["x"].dtype == np.float16
    assert tensors["x"].tobytes() == x.tobytes()


@pytest.mark.unit
@pytest.mark.parametrize("binary", [True, False])
def test_responses_built_from_the_spec_parse_in_tritonclient(binary: bool) -> None:
    """A response encoded per the spec decodes in tritonclient to the same arrays."""
    y = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    body, header_length = encode(
        "outputs", {"y": y}, binary=binary, extra={"model_name": "m", "model_version": "1"}
    )
    result = httpclient.InferenceServerClient.parse_response_body(body, header_length=header_length)
    assert np.array_equal(result.as_numpy("y"), y)
    assert result.get_response()["model_name"] == "m"


@pytest.mark.unit
def test_error_kinds_from_protocol_errors() -> None:
    """Failures are counted by a short stable kind: HTTP status, gRPC code, timeout, connection."""
    assert classify_error(InferenceServerException("bad", status="400")) == "http:400"
    assert (
        classify_error(InferenceServerException("x", status="StatusCode.UNAVAILABLE")) == "grpc:UNAVAILABLE"
    )
    assert classify_error(
        InferenceServerException("Deadline Exceeded", status="StatusCode.DEADLINE_EXCEEDED")
    ) == ("grpc:DEADLINE_EXCEEDED")
    assert classify_error(InferenceServerException("timed out")) == "timeout"
    assert classify_error(ConnectionRefusedError(111, "refused")) == "connection:ConnectionRefusedError"
    assert classify_error(TimeoutError()) == "timeout"
    assert classify_error(ValueError("x")) == "error:ValueError"
