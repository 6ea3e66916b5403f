"""MQTT sink (paho-mqtt): one JSON message per result, QoS 0/1/2, delivered before close returns."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from edgefleet.pipeline.errors import PipelineFailedError
from edgefleet.pipeline.frame import Item
from edgefleet.pipeline.sinks.base import Message
from edgefleet.pipeline.spec import MqttSinkSpec

__all__ = ["MqttSink"]

log = logging.getLogger(__name__)


class MqttSink:
    def __init__(self, spec: MqttSinkSpec, *, pipeline: str) -> None:
        self.name = f"mqtt:{spec.host}:{spec.port}"
        self.spec = spec
        self.pipeline = pipeline
        self._client: Any = None
        self._connected = threading.Event()
        self._pending: list[Any] = []

    def open(self) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.spec.client_id or "",
            protocol=mqtt.MQTTv311,
        )
        if self.spec.username:
            client.username_pw_set(self.spec.username, self.spec.password)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        try:
            client.connect(self.spec.host, self.spec.port, keepalive=self.spec.keepalive_s)
        except OSError as exc:
            raise PipelineFailedError(
                f"MQTT broker {self.spec.host}:{self.spec.port} is not reachable: {exc}",
                code="pipeline.sink_unavailable",
                sink=self.name,
            ) from exc
        client.loop_start()
        if not self._connected.wait(10):
            client.loop_stop()
            raise PipelineFailedError(
                f"MQTT broker {self.spec.host}:{self.spec.port} did not accept the connection",
                code="pipeline.sink_unavailable",
                sink=self.name,
            )
        self._client = client

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        del client, userdata, flags, properties
        if not reason.is_failure:
            self._connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        del client, userdata, flags, reason, properties
        self._connected.clear()

    def topic(self, message: Message) -> str:
        return self.spec.topic.format(pipeline=self.pipeline, source=message.get("source", ""))

    def write(self, message: Message, item: Item) -> None:
        del item
        if self._client is None:
            self.open()
        payload = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
        info = self._client.publish(self.topic(message), payload, qos=self.spec.qos)
        if self.spec.qos:
            self._pending = [i for i in self._pending if not i.is_published()]
            self._pending.append(info)

    def close(self) -> None:
        if self._client is None:
            return
        for info in self._pending:
            try:
                info.wait_for_publish(timeout=5)
            except (RuntimeError, ValueError) as exc:
                log.warning("MQTT message not confirmed before close: %s", exc)
        self._pending.clear()
        self._client.disconnect()
        self._client.loop_stop()
        self._client = None
