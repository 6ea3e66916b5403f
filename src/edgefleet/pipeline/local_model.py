"""In-process ONNX Runtime model, threads sized from the process's CPU budget."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from edgefleet.pipeline.errors import PipelineFailedError, SourceNotFoundError
from edgefleet.pipeline.inference import TensorInfo, Tensors
from edgefleet.probe.cpu_budget import read_cpu_budget

__all__ = ["OnnxModel"]

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


class OnnxModel:
    """An ``onnxruntime.InferenceSession`` on the CPU (ORT releases the GIL while it runs).

    Intra-op threads do not spin-wait by default: in a pipeline other threads (decoding,
    pre/post-processing) share the CPUs, and spinning takes their time."""

    def __init__(
        self,
        path: Path,
        *,
        threads: int | None = None,
        spinning: bool = False,
        cpu_threads: Callable[[], int] = lambda: read_cpu_budget().threads,
    ) -> None:
        import onnxruntime as ort

        if not path.is_file():
            raise SourceNotFoundError(
                f"model file {path} does not exist", code="pipeline.model_not_found", path=str(path)
            )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or cpu_threads()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # spinning intra-op threads burn the cycles the decode and pre/post-processing threads need
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types; translate them here
            raise PipelineFailedError(
                f"cannot load model {path}: {exc}", code="pipeline.model_invalid", path=str(path)
            ) from exc
        self.threads = opts.intra_op_num_threads
        self._inputs = [_info(i) for i in self._session.get_inputs()]
        self._outputs = [_info(o) for o in self._session.get_outputs()]
        self._metadata = dict(self._session.get_modelmeta().custom_metadata_map)

    @property
    def inputs(self) -> list[TensorInfo]:
        return self._inputs

    @property
    def outputs(self) -> list[TensorInfo]:
        return self._outputs

    @property
    def metadata(self) -> Mapping[str, str]:
        return self._metadata

    def infer(self, batch: Tensors) -> Tensors:
        names = [o.name for o in self._outputs]
        results = self._session.run(names, batch)
        return {n: np.asarray(r) for n, r in zip(names, results, strict=True)}

    def close(self) -> None:
        """Nothing to release beyond the session, which the garbage collector frees."""


def _info(arg: object) -> TensorInfo:
    shape = tuple(d if isinstance(d, int) else None for d in getattr(arg, "shape", ()) or ())
    return TensorInfo(
        str(getattr(arg, "name", "")), shape, _ORT_TYPES.get(str(getattr(arg, "type", "")), "float32")
    )
