"""Load generation against inference endpoints: the engine behind ``edgefleet bench``.

One closed-loop runner (:mod:`.runner`) drives any :class:`~.targets.Target`: raw ONNX Runtime in
this process, or a KServe v2 / Open Inference Protocol endpoint over REST (binary tensor extension
or plain JSON) or gRPC, through the real ``tritonclient`` protocol implementation. Inputs come from
the model's metadata (:mod:`.inputs`), numbers from :mod:`.stats`, the report from :mod:`.report`.
"""

from __future__ import annotations

__all__: list[str] = []
