"""ONNX Runtime behind PyTriton (Triton Inference Server + its Python backend), batching off.

Usage: python pytriton_ort.py MODEL NAME HTTP_PORT GRPC_PORT METRICS_PORT
The bundled tritonserver runs the model through the Python backend, which proxies each request
to this process; ORT runs here with ``ORT_INTRA_OP_THREADS`` intra-op threads.
"""

import os
import sys

import numpy as np
import onnxruntime as ort
from pytriton.decorators import batch
from pytriton.model_config import ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64}


def main() -> None:
    model, name, http_port, grpc_port, metrics_port = sys.argv[1:6]
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(os.environ.get("ORT_INTRA_OP_THREADS", "0"))
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]

    @batch
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(outputs, session.run(None, inputs), strict=True))

    def dims(shape: list) -> tuple:
        return tuple(d if isinstance(d, int) else -1 for d in shape)

    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=int(http_port),
        grpc_address="127.0.0.1",
        grpc_port=int(grpc_port),
        metrics_address="127.0.0.1",
        metrics_port=int(metrics_port),
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name=name,
            infer_func=infer,
            inputs=[
                Tensor(name=i.name, dtype=_DTYPES[i.type], shape=dims(i.shape)) for i in session.get_inputs()
            ],
            outputs=[
                Tensor(name=o.name, dtype=_DTYPES[o.type], shape=dims(o.shape)) for o in session.get_outputs()
            ],
            config=ModelConfig(batching=False),
        )
        triton.serve()


if __name__ == "__main__":
    main()
