"""The pipeline spec: sources → (transforms → model → post-processing)* → sinks, and the policy.

A spec is a TOML or YAML file (see :mod:`edgefleet.pipeline.specfile` for loading, with errors
that name the key and its line). Models form a chain: the first runs on whole frames; a later
model with ``on = "<earlier model>"`` runs on the regions (boxes) that model found, so a text
detector followed by a text recogniser is one spec.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ClassifyPost",
    "CtcPost",
    "DbPost",
    "HttpPushSourceSpec",
    "ImageFolderSourceSpec",
    "JsonlSinkSpec",
    "MjpegSinkSpec",
    "ModelSpec",
    "MqttSinkSpec",
    "PipelineSettings",
    "PipelineSpec",
    "PostprocessSpec",
    "PreprocessSpec",
    "ReconnectSpec",
    "ResizeSpec",
    "SegmentPost",
    "SinkSpec",
    "SourceSpec",
    "V4l2SourceSpec",
    "VideoSinkSpec",
    "VideoSourceSpec",
    "WebhookSinkSpec",
    "YoloPost",
    "cross_check",
]

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PipelineSettings(_Spec):
    """How the pipeline runs as a whole."""

    name: Name = "pipeline"
    policy: Literal["latest", "every"] = "latest"
    """``latest``: drop stale frames, never fall behind real time. ``every``: process every frame."""
    max_fps: Annotated[float, Field(gt=0)] | None = None
    """Upper bound on frames taken from each source per second (the rest are dropped, counted)."""
    queue_size: Annotated[int, Field(ge=1, le=256)] = 2
    """Capacity of each queue between stages; small keeps latency low."""
    batch_size: Annotated[int, Field(ge=1, le=64)] = 1
    """Frames (across sources) batched into one call of the first model."""
    metrics_port: Annotated[int, Field(ge=0, le=65535)] | None = None
    """Serve Prometheus metrics on this port (0 picks a free one); none when unset."""
    metrics_host: str = "127.0.0.1"
    max_frames: Annotated[int, Field(ge=1)] | None = None
    """Stop after this many results (all sources together)."""
    duration_s: Annotated[float, Field(gt=0)] | None = None
    """Stop after this many seconds."""


class ReconnectSpec(_Spec):
    """Exponential backoff between attempts to (re)open a stream."""

    initial_s: Annotated[float, Field(gt=0)] = 0.5
    max_s: Annotated[float, Field(gt=0)] = 30.0
    factor: Annotated[float, Field(ge=1)] = 2.0
    max_attempts: Annotated[int, Field(ge=1)] | None = None
    """Give up after this many failed attempts in a row; retry forever when unset."""


class VideoSourceSpec(_Spec):
    """A video file or a network stream (RTSP, HTTP, MJPEG over HTTP) decoded by FFmpeg (PyAV)."""

    kind: Literal["video"]
    name: Name
    url: str = Field(min_length=1)
    """A file path (relative to the spec) or a URL: ``rtsp://``, ``http://``, ``https://``..."""
    format: str | None = None
    """FFmpeg demuxer to force (``mpjpeg`` for multipart MJPEG over HTTP); probed when unset."""
    loop: bool = False
    """Start a file again at its end."""
    realtime: bool | None = None
    """Pace a file at its own frame rate like a camera; default: on under the ``latest`` policy."""
    timeout_s: Annotated[float, Field(gt=0)] = 5.0
    """Open and read timeout for network streams."""
    reconnect: ReconnectSpec = ReconnectSpec()
    options: dict[str, str] = {}
    """Extra FFmpeg options (``rtsp_transport = "tcp"``...)."""


class ImageFolderSourceSpec(_Spec):
    """Every image file in a folder, in name order."""

    kind: Literal["images"]
    name: Name
    path: str = Field(min_length=1)
    pattern: str = "*"
    loop: bool = False
    fps: Annotated[float, Field(gt=0)] | None = None
    """Pace the images at this rate; as fast as the pipeline takes them when unset."""


class HttpPushSourceSpec(_Spec):
    """Frames POSTed as encoded images (JPEG, PNG...) to ``http://host:port/path``."""

    kind: Literal["http_push"]
    name: Name
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 0
    path: str = "/frames"
    max_body_bytes: Annotated[int, Field(ge=1)] = 32 * 1024 * 1024


class V4l2SourceSpec(_Spec):
    """A V4L2 camera; format, size and rate are negotiated with the driver."""

    kind: Literal["v4l2"]
    name: Name
    device: str = "/dev/video0"
    width: Annotated[int, Field(ge=1)] = 640
    height: Annotated[int, Field(ge=1)] = 480
    fps: Annotated[float, Field(gt=0)] = 30.0
    pixel_format: str | None = None
    """FourCC to prefer (``MJPG``, ``YUYV``...); the first the driver lists that FFmpeg decodes when unset."""


SourceSpec = Annotated[
    VideoSourceSpec | ImageFolderSourceSpec | HttpPushSourceSpec | V4l2SourceSpec,
    Field(discriminator="kind"),
]


class ResizeSpec(_Spec):
    """``stretch`` to width x height; ``letterbox`` (keep aspect, pad); ``fit`` (keep aspect, fit
    inside width x height, each side rounded to ``multiple_of``: dynamic-shape detectors); ``height``
    (exactly ``height`` high, width by aspect up to ``width``: text-line recognisers). Images of
    different sizes in one batch are padded at the right and bottom."""

    width: Annotated[int, Field(ge=1, le=16384)]
    height: Annotated[int, Field(ge=1, le=16384)]
    mode: Literal["stretch", "letterbox", "fit", "height"] = "stretch"
    pad_value: Annotated[int, Field(ge=0, le=255)] = 114
    multiple_of: Annotated[int, Field(ge=1, le=1024)] = 1


class PreprocessSpec(_Spec):
    """Turns decoded RGB frames into the model's input tensor."""

    input: str | None = None
    """Model input to feed; the model's first input when unset."""
    color: Literal["rgb", "bgr", "gray"] = "rgb"
    resize: ResizeSpec | None = None
    scale: float = 1.0 / 255.0
    mean: list[float] = Field(default_factory=lambda: [0.0, 0.0, 0.0])
    std: list[float] = Field(default_factory=lambda: [1.0, 1.0, 1.0])
    layout: Literal["nchw", "nhwc"] = "nchw"
    dtype: Literal["float32", "float16", "uint8"] = "float32"

    @model_validator(mode="after")
    def _channels(self) -> PreprocessSpec:
        channels = 1 if self.color == "gray" else 3
        for key in ("mean", "std"):
            values = getattr(self, key)
            if len(values) not in (1, channels):
                raise ValueError(f"{key} needs 1 or {channels} values for color {self.color!r}")
        if any(v == 0 for v in self.std):
            raise ValueError("std values must not be 0")
        return self


class ClassifyPost(_Spec):
    """Top-k classes with labels; softmax applied when the output is not already probabilities."""

    kind: Literal["classify"]
    output: str | None = None
    top_k: Annotated[int, Field(ge=1)] = 5
    labels: list[str] | None = None
    labels_file: str | None = None
    """One label a line; when neither is set, the model's ``character`` metadata if it has one."""
    softmax: bool | None = None
    """Force (true) or skip (false) the softmax; decided from the values when unset."""


class YoloPost(_Spec):
    """YOLO detection decode (``yolov8``: [N, 4+C, A]; ``yolov5``: [N, A, 5+C]) and NMS."""

    kind: Literal["yolo"]
    output: str | None = None
    format: Literal["yolov8", "yolov5"] = "yolov8"
    conf_threshold: Annotated[float, Field(ge=0, le=1)] = 0.25
    iou_threshold: Annotated[float, Field(ge=0, le=1)] = 0.45
    max_detections: Annotated[int, Field(ge=1)] = 100
    labels: list[str] | None = None
    labels_file: str | None = None


class SegmentPost(_Spec):
    """Per-pixel argmax over classes; reports each class's share of the image."""

    kind: Literal["segment"]
    output: str | None = None
    labels: list[str] | None = None
    labels_file: str | None = None


class DbPost(_Spec):
    """DB text-detection post-processing: threshold the probability map, boxes from contours."""

    kind: Literal["db"]
    output: str | None = None
    threshold: Annotated[float, Field(ge=0, le=1)] = 0.3
    box_threshold: Annotated[float, Field(ge=0, le=1)] = 0.5
    unclip_ratio: Annotated[float, Field(gt=0)] = 1.6
    min_size: Annotated[float, Field(ge=0)] = 3.0
    max_candidates: Annotated[int, Field(ge=1)] = 1000


class CtcPost(_Spec):
    """CTC greedy decoding with a dictionary (one symbol a line; blank first, space last)."""

    kind: Literal["ctc"]
    output: str | None = None
    dictionary: str | None = None
    """Dictionary file, one symbol a line (``pkg:<package>/<file>`` inside a Python package); the
    model's ``character`` metadata when unset (PP-OCR models carry their dictionary there)."""
    blank_first: bool = True
    append_space: bool = True
    min_score: Annotated[float, Field(ge=0, le=1)] = 0.0


PostprocessSpec = Annotated[
    ClassifyPost | YoloPost | SegmentPost | DbPost | CtcPost, Field(discriminator="kind")
]


class ModelSpec(_Spec):
    """One model in the chain: where it runs, what feeds it and how its output is read."""

    name: Name
    path: str | None = None
    """ONNX file run in-process (``pkg:<package>/<file>`` for a file inside a Python package)."""
    url: str | None = None
    """KServe v2 endpoint instead: ``http://host:port`` or ``grpc://host:port``."""
    model_name: str | None = None
    """Model name on the KServe endpoint; the spec's model ``name`` when unset."""
    threads: Annotated[int, Field(ge=1, le=256)] | None = None
    """Intra-op threads for an in-process model; the process's CPU budget when unset."""
    spinning: bool = False
    """Let ONNX Runtime's idle threads spin-wait: a little lower latency on CPUs nothing else uses;
    off by default because decoding and pre/post-processing threads need those cycles."""
    on: str = "frame"
    """``frame``, or the name of an earlier model whose boxes are cropped and fed to this one."""
    preprocess: PreprocessSpec = PreprocessSpec()
    postprocess: PostprocessSpec

    @model_validator(mode="after")
    def _one_location(self) -> ModelSpec:
        if (self.path is None) == (self.url is None):
            raise ValueError("set exactly one of path (in-process ONNX) or url (KServe v2 endpoint)")
        return self


class JsonlSinkSpec(_Spec):
    """One JSON object per result, one per line, appended to a file."""

    kind: Literal["jsonl"]
    path: str


class MqttSinkSpec(_Spec):
    """One MQTT message per result (JSON), to ``topic`` with ``{pipeline}`` and ``{source}`` filled in."""

    kind: Literal["mqtt"]
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    topic: str = "edgefleet/pipeline/{pipeline}/{source}"
    qos: Literal[0, 1, 2] = 1
    client_id: str | None = None
    username: str | None = None
    password: str | None = None
    keepalive_s: Annotated[int, Field(ge=5)] = 30


class WebhookSinkSpec(_Spec):
    """One HTTP POST (JSON body) per result."""

    kind: Literal["webhook"]
    url: str
    timeout_s: Annotated[float, Field(gt=0)] = 5.0
    headers: dict[str, str] = {}


class MjpegSinkSpec(_Spec):
    """Annotated frames as an MJPEG preview at ``http://host:port/`` (multipart, any browser)."""

    kind: Literal["mjpeg"]
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 0
    quality: Annotated[int, Field(ge=1, le=100)] = 80


class VideoSinkSpec(_Spec):
    """Annotated frames encoded into a video file (FFmpeg through PyAV)."""

    kind: Literal["video"]
    path: str
    codec: str = "mpeg4"
    """FFmpeg encoder name (``mpeg4``, ``libx264`` where FFmpeg has it, ``mjpeg``...)."""
    fps: Annotated[int, Field(ge=1, le=240)] = 30


SinkSpec = Annotated[
    JsonlSinkSpec | MqttSinkSpec | WebhookSinkSpec | MjpegSinkSpec | VideoSinkSpec,
    Field(discriminator="kind"),
]


class PipelineSpec(_Spec):
    """A whole pipeline."""

    pipeline: PipelineSettings = PipelineSettings()
    sources: Annotated[list[SourceSpec], Field(min_length=1)]
    models: Annotated[list[ModelSpec], Field(min_length=1)]
    sinks: list[SinkSpec] = []


Loc = tuple[str | int, ...]


def cross_check(spec: PipelineSpec) -> list[tuple[Loc, str]]:
    """Problems that span several keys, each with the location of the key to fix."""
    problems: list[tuple[Loc, str]] = []
    for key, names in (
        ("sources", [s.name for s in spec.sources]),
        ("models", [m.name for m in spec.models]),
    ):
        for i, n in enumerate(names):
            if n in names[:i]:
                problems.append(((key, i, "name"), f"{key} names must be unique; {n!r} is repeated"))
    seen: list[str] = []
    for i, m in enumerate(spec.models):
        if i == 0 and m.on != "frame":
            problems.append((("models", 0, "on"), "the first model must run on 'frame'"))
        elif m.on != "frame" and m.on not in seen:
            allowed = ", ".join(["frame", *seen])
            problems.append((("models", i, "on"), f"on={m.on!r} is not allowed; allowed: {allowed}"))
        seen.append(m.name)
    return problems
