"""Shared telemetry conventions: structured logs and Prometheus metric names."""

from edgefleet.telemetry.logs import configure_logging, get_logger
from edgefleet.telemetry.metrics import metric_name, new_registry

__all__ = ["configure_logging", "get_logger", "metric_name", "new_registry"]
