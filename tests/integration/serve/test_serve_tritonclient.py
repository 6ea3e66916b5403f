"""`edgefleet serve` as a real process answers the real tritonclient over REST and gRPC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as tg
import tritonclient.http as th

from tests.integration.serve.serve_process import serve_process
from tests.unit.serve.serve_models import affine_model, make_repo, wheel_model


def _raw(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [np.asarray(o) for o in session.run(None, feeds)]


@pytest.mark.integration
def test_repository_over_http_and_grpc_matches_raw_onnxruntime(tmp_path: Path) -> None:
    """PP-LCNet from the wheel and a tiny graph, via tritonclient HTTP (binary and JSON) and gRPC."""
    repo = make_repo(tmp_path / "repo", with_wheel=True)
    image = np.random.default_rng(1).random((2, 3, 224, 224), dtype=np.float32)
    expected_orient = _raw(wheel_model(), {"x": image})[0]
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    ids = np.array([[1, 2], [3, 4]], np.int64)
    expected_y, expected_count = _raw(repo / "affine" / "1" / "model.onnx", {"x": x, "ids": ids})

    with serve_process(repo, "--cache-dir", str(tmp_path / "cache"), "--threads", "1") as srv:
        summary = "".join(srv.output)
        assert "CPUExecutionProvider" in summary
        assert "CPU budget" in summary
        http = th.InferenceServerClient(srv.http)
        assert http.is_server_live()
        assert http.is_server_ready()
        assert http.is_model_ready("orient")
        assert http.get_model_metadata("orient")["inputs"][0]["shape"] == [-1, 3, 224, 224]
        for binary in (True, False):
            a = th.InferInput("x", list(image.shape), "FP32")
            a.set_data_from_numpy(image, binary_data=binary)
            out = th.InferRequestedOutput(
                http.get_model_metadata("orient")["outputs"][0]["name"], binary_data=binary
            )
            result = http.infer("orient", [a], outputs=[out])
            np.testing.assert_allclose(result.as_numpy(out.name()), expected_orient, rtol=1e-5, atol=1e-6)
        a = th.InferInput("x", [2, 4], "FP32")
        a.set_data_from_numpy(x)
        b = th.InferInput("ids", [2, 2], "INT64")
        b.set_data_from_numpy(ids)
        result = http.infer("affine", [a, b])
        np.testing.assert_allclose(result.as_numpy("y"), expected_y)
        np.testing.assert_array_equal(result.as_numpy("count"), expected_count)
        http.close()

        grpc = tg.InferenceServerClient(srv.grpc)
        assert grpc.is_server_live()
        assert grpc.is_model_ready("affine")
        g = tg.InferInput("x", list(image.shape), "FP32")
        g.set_data_from_numpy(image)
        result = grpc.infer("orient", [g])
        name = grpc.get_model_metadata("orient").outputs[0].name
        np.testing.assert_allclose(result.as_numpy(name), expected_orient, rtol=1e-5, atol=1e-6)
        ga = tg.InferInput("x", [2, 4], "FP32")
        ga.set_data_from_numpy(x)
        gb = tg.InferInput("ids", [2, 2], "INT64")
        gb.set_data_from_numpy(ids)
        result = grpc.infer("affine", [ga, gb], model_version="1")
        np.testing.assert_allclose(result.as_numpy("y"), expected_y)
        np.testing.assert_array_equal(result.as_numpy("count"), expected_count)
        grpc.close()
    assert list((tmp_path / "cache" / "optimized").glob("*.onnx"))


@pytest.mark.integration
def test_single_model_file(tmp_path: Path) -> None:
    """A bare .onnx path serves as a model named after the file."""
    path = affine_model(tmp_path / "scaler.onnx", 4.0)
    with serve_process(path, "--no-cache", "--model-name", "scaler") as srv:
        client = tg.InferenceServerClient(srv.grpc)
        a = tg.InferInput("x", [1, 4], "FP32")
        a.set_data_from_numpy(np.ones((1, 4), np.float32))
        b = tg.InferInput("ids", [1, 2], "INT64")
        b.set_data_from_numpy(np.zeros((1, 2), np.int64))
        np.testing.assert_allclose(client.infer("scaler", [a, b]).as_numpy("y"), np.full((1, 4), 5.0))
        client.close()


@pytest.mark.integration
def test_bad_model_path_is_one_line_error(tmp_path: Path) -> None:
    """A path that is neither a file nor a directory exits 3 with the error code, no traceback."""
    import subprocess
    import sys

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgefleet",
            "serve",
            str(tmp_path / "missing"),
            "--http-port",
            "0",
            "--grpc-port",
            "0",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert r.returncode == 3, r.stderr
    assert "runtime.repository_not_found" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.integration
def test_nothing_loadable_exits_with_the_error(tmp_path: Path) -> None:
    """A provider this build lacks, or a corrupt only model, ends the command with the error code."""
    import subprocess
    import sys

    path = affine_model(tmp_path / "m.onnx", 1.0)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"junk")
    for args, code, exit_code in (
        ([str(path), "--providers", "tensorrt,rknpu"], "runtime.provider_unavailable", 6),
        ([str(bad)], "runtime.load_failed", 2),
    ):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "edgefleet",
                "serve",
                *args,
                "--http-port",
                "0",
                "--grpc-port",
                "0",
                "--no-cache",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert r.returncode == exit_code, r.stderr
        assert code in r.stderr
        assert "Traceback" not in r.stderr


@pytest.mark.integration
def test_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    """A port in use fails with serve.bind_failed naming the address, and nothing is left bound."""
    import socket

    from edgefleet.errors import UnavailableError
    from edgefleet.serving import ServeSettings, build_server

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = build_server(
            affine_model(tmp_path / "m.onnx", 1.0), ServeSettings(http_port=port, grpc_port=0)
        )
        with pytest.raises(UnavailableError) as err:
            server.start()
        assert err.value.code == "serve.bind_failed"
        assert str(port) in err.value.message
