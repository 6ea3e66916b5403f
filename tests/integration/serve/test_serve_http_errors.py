"""Bad input over REST: stable codes naming the tensor, 400/404/413/503, never a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from edgefleet.serving import Server
from tests.integration.serve.conftest import MAX_BODY


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=str(server.http_url), timeout=30) as c:
        yield c


def _good_inputs() -> list[dict[str, Any]]:
    return [
        {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]},
        {"name": "ids", "datatype": "INT64", "shape": [1, 2], "data": [5, 6]},
    ]


def _error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert "Traceback" not in r.text
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    assert isinstance(body["error"], str)
    return body


@pytest.mark.integration
def test_json_infer_works(client: httpx.Client) -> None:
    r = client.post("/v2/models/affine/infer", json={"inputs": _good_inputs(), "id": "r1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "r1"
    assert body["model_version"] == "1"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["y"]["data"] == [3.0, 5.0, 7.0, 9.0]
    assert outputs["y"]["shape"] == [1, 4]
    assert outputs["count"]["data"] == [11]


@pytest.mark.integration
def test_binary_infer_round_trips(client: httpx.Client) -> None:
    """Binary request in, binary output for y and JSON for count as asked per output."""
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    ids = np.ones((2, 2), np.int64)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [2, 4],
                    "parameters": {"binary_data_size": x.nbytes},
                },
                {
                    "name": "ids",
                    "datatype": "INT64",
                    "shape": [2, 2],
                    "parameters": {"binary_data_size": ids.nbytes},
                },
            ],
            "outputs": [{"name": "y", "parameters": {"binary_data": True}}, {"name": "count"}],
        }
    ).encode()
    r = client.post(
        "/v2/models/affine/versions/1/infer",
        content=header + x.tobytes() + ids.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert r.status_code == 200, r.text
    length = int(r.headers["inference-header-content-length"])
    head = json.loads(r.content[:length])
    outputs = {o["name"]: o for o in head["outputs"]}
    y = np.frombuffer(r.content[length:], np.float32).reshape(2, 4)
    np.testing.assert_allclose(y, x * 2 + 1)
    assert outputs["y"]["parameters"]["binary_data_size"] == 32
    assert outputs["count"]["data"] == [2, 2]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("change", "code", "tensor"),
    [
        ({"name": "z"}, "infer.unknown_input", "z"),
        ({"shape": [1, 5], "data": [1, 2, 3, 4, 5]}, "infer.shape_mismatch", "x"),
        ({"datatype": "FP64"}, "infer.dtype_mismatch", "x"),
        ({"datatype": "FP99"}, "infer.bad_datatype", "x"),
        ({"shape": [1, 3]}, "infer.size_mismatch", "x"),
    ],
)
def test_bad_tensor_is_400_naming_it(
    client: httpx.Client, change: dict[str, Any], code: str, tensor: str
) -> None:
    inputs = _good_inputs()
    inputs[0] = {**inputs[0], **change}
    body = _error(client.post("/v2/models/affine/infer", json={"inputs": inputs}), 400, code)
    assert body["fields"]["tensor"] == tensor
    assert tensor in body["error"]


@pytest.mark.integration
def test_shape_error_says_what_was_expected(client: httpx.Client) -> None:
    inputs = _good_inputs()
    inputs[0] = {**inputs[0], "shape": [2, 2]}
    body = _error(
        client.post("/v2/models/affine/infer", json={"inputs": inputs}), 400, "infer.shape_mismatch"
    )
    assert body["fields"]["expected"] == [-1, 4]
    assert body["fields"]["got"] == [2, 2]


@pytest.mark.integration
def test_missing_input_and_malformed_bodies(client: httpx.Client) -> None:
    _error(
        client.post("/v2/models/affine/infer", json={"inputs": _good_inputs()[:1]}),
        400,
        "infer.missing_input",
    )
    _error(client.post("/v2/models/affine/infer", content=b"{not json"), 400, "serve.bad_request")
    _error(client.post("/v2/models/affine/infer", json={"inputs": "x"}), 400, "serve.bad_request")
    _error(
        client.post(
            "/v2/models/affine/infer",
            content=b'{"inputs": []}',
            headers={"Inference-Header-Content-Length": "999"},
        ),
        400,
        "serve.bad_request",
    )


@pytest.mark.integration
def test_body_over_limit_is_413(client: httpx.Client) -> None:
    r = client.post("/v2/models/affine/infer", content=b"x" * (MAX_BODY + 1))
    _error(r, 413, "serve.body_too_large")

    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY // 65536 + 2):
            yield b" " * 65536

    _error(client.post("/v2/models/affine/infer", content=chunks()), 413, "serve.body_too_large")


@pytest.mark.integration
def test_unknown_model_and_version_are_404(client: httpx.Client) -> None:
    _error(
        client.post("/v2/models/nope/infer", json={"inputs": _good_inputs()}), 404, "runtime.model_not_found"
    )
    body = _error(
        client.post("/v2/models/affine/versions/9/infer", json={"inputs": _good_inputs()}),
        404,
        "runtime.version_not_found",
    )
    assert body["fields"]["loaded"] == [1]
    _error(client.get("/v2/models/nope"), 404, "runtime.model_not_found")
    _error(client.get("/v2/models/nope/ready"), 404, "runtime.model_not_found")


@pytest.mark.integration
def test_corrupt_model_is_unavailable_while_others_serve(client: httpx.Client, server: Server) -> None:
    """The corrupt model has a clear load error; the others are ready and answer."""
    assert "broken" in server.load_errors
    assert server.load_errors["broken"].code == "runtime.load_failed"
    body = _error(
        client.post("/v2/models/broken/infer", json={"inputs": _good_inputs()}),
        503,
        "runtime.model_not_ready",
    )
    assert "Protobuf" in body["error"] or "load" in body["error"]
    index = client.post("/v2/repository/index", json={}).json()
    states = {row["name"]: row for row in index}
    assert states["broken"]["state"] == "UNAVAILABLE"
    assert states["broken"]["reason"]
    assert states["affine"]["state"] == "READY"
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/affine/ready").status_code == 200
    ready_only = client.post("/v2/repository/index", json={"ready": True}).json()
    assert "broken" not in {row["name"] for row in ready_only}


@pytest.mark.integration
def test_metrics_count_requests_and_failures(client: httpx.Client) -> None:
    client.post("/v2/models/affine/infer", json={"inputs": _good_inputs()})
    client.post("/v2/models/affine/infer", json={"inputs": _good_inputs()[:1]})
    text = client.get("/metrics").text
    assert 'edgefleet_serve_requests_total{model="affine",version="1"}' in text
    assert (
        'edgefleet_serve_request_failures_total{model="affine",reason="infer.missing_input",version="1"}'
        in text
    )
    for family in (
        "edgefleet_serve_request_duration_seconds_bucket",
        "edgefleet_serve_queue_duration_seconds_bucket",
        "edgefleet_serve_compute_duration_seconds_bucket",
        "edgefleet_serve_batch_size_bucket",
        "edgefleet_serve_inflight_requests",
        'edgefleet_serve_model_load_duration_seconds{model="orient",version="1"}',
    ):
        assert family in text, family


@pytest.mark.integration
def test_compressed_requests(client: httpx.Client) -> None:
    """gzip and deflate bodies are accepted; a bomb over the limit is 413, junk is 400."""
    import gzip
    import zlib

    raw = json.dumps({"inputs": _good_inputs()}).encode()
    for encoding, data in (("gzip", gzip.compress(raw)), ("deflate", zlib.compress(raw))):
        r = client.post("/v2/models/affine/infer", content=data, headers={"Content-Encoding": encoding})
        assert r.status_code == 200, r.text
    bomb = gzip.compress(b" " * (MAX_BODY * 2))
    _error(
        client.post("/v2/models/affine/infer", content=bomb, headers={"Content-Encoding": "gzip"}),
        413,
        "serve.body_too_large",
    )
    _error(
        client.post("/v2/models/affine/infer", content=b"junk", headers={"Content-Encoding": "gzip"}),
        400,
        "serve.bad_request",
    )
    _error(
        client.post("/v2/models/affine/infer", content=raw, headers={"Content-Encoding": "br"}),
        400,
        "serve.bad_request",
    )


@pytest.mark.integration
def test_repository_load_of_corrupt_model_is_400(client: httpx.Client) -> None:
    """Loading a corrupt model over REST is a clear 400 naming the file; the others keep serving."""
    body = _error(client.post("/v2/repository/models/broken/load"), 400, "runtime.load_failed")
    assert "model.onnx" in body["error"]
    _error(client.post("/v2/repository/models/nope/load"), 404, "runtime.model_not_found")
    assert client.post("/v2/models/affine/infer", json={"inputs": _good_inputs()}).status_code == 200


@pytest.mark.integration
def test_bytes_tensors_over_json(client: httpx.Client) -> None:
    r = client.post(
        "/v2/models/strings/infer",
        json={"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["a", "bc"]}]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0] == {"name": "out", "datatype": "BYTES", "shape": [2], "data": ["a", "bc"]}


@pytest.mark.integration
def test_unknown_route_and_method_are_json(client: httpx.Client) -> None:
    _error(client.get("/v2/models/affine/config"), 404, "serve.no_route")
    _error(client.get("/v2/models/affine/infer"), 405, "serve.no_route")


@pytest.mark.integration
def test_lone_fast_requests_run_inline_and_others_do_not(client: httpx.Client, server: Server) -> None:
    """Sequential requests to a fast model run on the event loop; batching models never do."""
    assert server.rest_app is not None
    api = server.rest_app.api
    for _ in range(3):
        r = client.post("/v2/models/affine/infer", json={"inputs": _good_inputs()})
        assert r.status_code == 200
        assert r.json()["outputs"][0]["data"] == [3.0, 5.0, 7.0, 9.0]
    before = api.inline_runs
    client.post("/v2/models/affine/infer", json={"inputs": _good_inputs()})
    assert api.inline_runs == before + 1
    for _ in range(3):
        assert client.post("/v2/models/batched/infer", json={"inputs": _good_inputs()}).status_code == 200
    assert api.inline_runs == before + 1
