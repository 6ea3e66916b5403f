"""The gRPC edge with tritonclient in process: infer, metadata, repository, and status codes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tg
from tritonclient.utils import InferenceServerException

from edgefleet.serving import Server
from tests.integration.serve.conftest import MAX_BODY


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[tg.InferenceServerClient]:
    c = tg.InferenceServerClient(str(server.grpc_address))
    yield c
    c.close()


def _inputs(x: np.ndarray, ids: np.ndarray, *, names: tuple[str, str] = ("x", "ids")) -> list[tg.InferInput]:
    a = tg.InferInput(names[0], list(x.shape), "FP32" if x.dtype == np.float32 else "FP64")
    a.set_data_from_numpy(x)
    b = tg.InferInput(names[1], list(ids.shape), "INT64")
    b.set_data_from_numpy(ids)
    return [a, b]


def _status(call: object) -> tuple[str, str]:
    with pytest.raises(InferenceServerException) as err:
        call()  # type: ignore[operator]
    return str(err.value.status()), str(err.value.message())


@pytest.mark.integration
def test_infer_and_metadata(client: tg.InferenceServerClient) -> None:
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    ids = np.array([[1, 2]], np.int64)
    result = client.infer("affine", _inputs(x, ids), outputs=[tg.InferRequestedOutput("y")])
    np.testing.assert_allclose(result.as_numpy("y"), x * 2 + 1)
    assert result.as_numpy("count") is None
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("affine")
    meta = client.get_model_metadata("affine", as_json=True)
    assert meta["inputs"][0] == {"name": "x", "datatype": "FP32", "shape": ["-1", "4"]}
    assert "model_repository" in client.get_server_metadata(as_json=True)["extensions"]


@pytest.mark.integration
def test_status_codes(client: tg.InferenceServerClient) -> None:
    """Bad input is INVALID_ARGUMENT naming the tensor, unknown is NOT_FOUND, big is RESOURCE_EXHAUSTED."""
    x = np.zeros((1, 4), np.float32)
    ids = np.zeros((1, 2), np.int64)
    status, message = _status(lambda: client.infer("affine", _inputs(x, ids, names=("z", "ids"))))
    assert status == "StatusCode.INVALID_ARGUMENT"
    assert "'z'" in message
    status, message = _status(lambda: client.infer("affine", _inputs(np.zeros((1, 5), np.float32), ids)))
    assert status == "StatusCode.INVALID_ARGUMENT"
    assert "[-1, 4]" in message
    status, _ = _status(lambda: client.infer("affine", _inputs(np.zeros((1, 4), np.float64), ids)))
    assert status == "StatusCode.INVALID_ARGUMENT"
    assert _status(lambda: client.infer("nope", _inputs(x, ids)))[0] == "StatusCode.NOT_FOUND"
    assert (
        _status(lambda: client.infer("affine", _inputs(x, ids), model_version="4"))[0]
        == "StatusCode.NOT_FOUND"
    )
    assert _status(lambda: client.infer("broken", _inputs(x, ids)))[0] == "StatusCode.UNAVAILABLE"
    big = np.zeros((MAX_BODY // 16 + 1, 4), np.float32)
    big_ids = np.zeros((big.shape[0], 2), np.int64)
    assert (
        _status(lambda: client.infer("affine", _inputs(big, big_ids)))[0] == "StatusCode.RESOURCE_EXHAUSTED"
    )
    assert not client.is_model_ready("broken")
    assert "Traceback" not in message


@pytest.mark.integration
def test_repository_extension(client: tg.InferenceServerClient) -> None:
    index = {m["name"]: m for m in client.get_model_repository_index(as_json=True)["models"]}
    assert index["affine"]["state"] == "READY"
    assert index["broken"]["state"] == "UNAVAILABLE"
    with pytest.raises(InferenceServerException) as err:
        client.load_model("broken")
    assert str(err.value.status()) == "StatusCode.INVALID_ARGUMENT"
    assert "load" in str(err.value.message())
    with pytest.raises(InferenceServerException) as err2:
        client.load_model("nope")
    assert str(err2.value.status()) == "StatusCode.NOT_FOUND"


@pytest.mark.integration
def test_concurrent_requests_are_batched_by_the_server(server: Server) -> None:
    """The 'batched' model joins concurrent requests: fewer runs than requests, correct rows."""
    address = str(server.grpc_address)
    before = _batch_counts(server)
    clients = [tg.InferenceServerClient(address) for _ in range(8)]
    for c in clients:
        assert c.is_server_ready()
    barrier = threading.Barrier(8)

    def one(i: int) -> np.ndarray:
        x = np.full((1, 4), i, np.float32)
        barrier.wait()
        out = clients[i].infer("batched", _inputs(x, np.zeros((1, 2), np.int64))).as_numpy("y")
        assert out is not None
        return out

    with ThreadPoolExecutor(8) as pool:
        outputs = list(pool.map(one, range(8)))
    for c in clients:
        c.close()
    for i, out in enumerate(outputs):
        np.testing.assert_allclose(out, np.full((1, 4), 2 * i + 1, np.float32))
    runs, rows = (a - b for a, b in zip(_batch_counts(server), before, strict=True))
    assert rows == 8
    assert runs < 8


def _batch_counts(server: Server) -> tuple[float, float]:
    histogram = server.dataplane.metrics.batch_size.labels("batched", "1")
    samples = {s.name: s.value for m in histogram.collect() for s in m.samples}
    return samples.get("edgefleet_serve_batch_size_count", 0.0), samples.get(
        "edgefleet_serve_batch_size_sum", 0.0
    )


@pytest.mark.integration
def test_raw_grpc_status_carries_error_code(server: Server) -> None:
    """The stable error code is in the trailing metadata for programs."""
    from edgefleet.serving.proto import grpc_service_pb2 as pb
    from edgefleet.serving.proto import grpc_service_pb2_grpc as pb_grpc

    with grpc.insecure_channel(str(server.grpc_address)) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        request = pb.ModelInferRequest(model_name="affine")
        request.inputs.add(name="x", datatype="FP32", shape=[1, 4])
        request.raw_input_contents.append(b"\x00" * 12)
        with pytest.raises(grpc.RpcError) as err:
            stub.ModelInfer(request)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        trailing = dict(err.value.trailing_metadata())  # type: ignore[attr-defined]
        assert trailing["edgefleet-error-code"] == "infer.size_mismatch"
        ready = stub.ServerReady(pb.ServerReadyRequest())
        assert ready.ready


@pytest.mark.integration
def test_bytes_tensors_over_grpc(client: tg.InferenceServerClient) -> None:
    """BYTES inputs reach ONNX Runtime as strings and come back as bytes."""
    text = np.array([b"hello", "wörld".encode(), b""], dtype=np.object_)
    a = tg.InferInput("text", [3], "BYTES")
    a.set_data_from_numpy(text)
    out = client.infer("strings", [a]).as_numpy("out")
    assert out is not None
    assert out.tolist() == text.tolist()
