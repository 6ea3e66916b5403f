"""The KServe v2 inference server (REST with the binary extension, and gRPC) over the runtime.

Stable entry points: :func:`build_server`, :class:`Server`, :class:`ServeSettings`, and the
protocol-neutral core :class:`DataPlane`.
"""

from edgefleet.serving.app import Server, ServeSettings, build_server
from edgefleet.serving.dataplane import DataPlane
from edgefleet.serving.metrics import ServeMetrics

__all__ = ["DataPlane", "ServeMetrics", "ServeSettings", "Server", "build_server"]
