"""Metric names follow edgefleet_<area>_<what>_<unit>; logs are one JSON object per line."""

import io
import json
import logging

import pytest

from edgefleet.errors import InvalidInputError
from edgefleet.telemetry import configure_logging, get_logger, metric_name, new_registry


@pytest.mark.unit
def test_metric_names() -> None:
    """Base units and the counter suffix are appended; bad parts are refused."""
    assert metric_name("serve", "request_duration", "seconds") == "edgefleet_serve_request_duration_seconds"
    assert metric_name("agent", "restarts", counter=True) == "edgefleet_agent_restarts_total"
    with pytest.raises(InvalidInputError, match="base unit"):
        metric_name("serve", "latency", "milliseconds")
    with pytest.raises(InvalidInputError, match="lower_snake_case"):
        metric_name("Serve", "x")
    with pytest.raises(InvalidInputError, match="suffix"):
        metric_name("serve", "requests_total", counter=True)


@pytest.mark.unit
def test_registries_are_independent() -> None:
    """Two apps in one process never collide on the same metric."""
    from prometheus_client import Counter

    for _ in range(2):
        Counter("edgefleet_test_things", "things", registry=new_registry())


@pytest.mark.unit
def test_json_logs_carry_extra_fields() -> None:
    """A record with extra= becomes one JSON line with those keys at the top level."""
    buf = io.StringIO()
    configure_logging("debug", "json", stream=buf)
    try:
        get_logger("tests.telemetry").info("model loaded", extra={"model": "resnet", "seconds": 0.5})
    finally:
        logging.getLogger("edgefleet").handlers.clear()
    record = json.loads(buf.getvalue())
    assert record["msg"] == "model loaded"
    assert record["logger"] == "edgefleet.tests.telemetry"
    assert record["model"] == "resnet"
    assert record["seconds"] == 0.5
    assert record["level"] == "info"
