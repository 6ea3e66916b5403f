"""A minimal ONNX Runtime model for Seldon MLServer, written the way its users write one.

MLServer ships no ONNX runtime, so users subclass ``MLModel``: load a session in ``load`` and
decode, run, encode in ``predict``. Thread counts come from ``ORT_INTRA_OP_THREADS`` so every
server in the benchmark runs ORT with the same pool.
"""

import os

import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OrtModel(MLModel):
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("ORT_INTRA_OP_THREADS", "0"))
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            self.settings.parameters.uri, options, providers=["CPUExecutionProvider"]
        )
        self._outputs = [o.name for o in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {item.name: NumpyCodec.decode_input(item) for item in payload.inputs}
        results = self._session.run(None, feeds)
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                NumpyCodec.encode_output(name=n, payload=v)
                for n, v in zip(self._outputs, results, strict=True)
            ],
        )
