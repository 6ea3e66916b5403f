"""From a validated spec to running parts: sources, model stages and sinks."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgefleet.pipeline.errors import PipelineSpecError
from edgefleet.pipeline.inference import Model
from edgefleet.pipeline.postprocess import (
    Classify,
    CtcDecode,
    DbTextDetect,
    Postprocessor,
    Segment,
    YoloDetect,
)
from edgefleet.pipeline.sinks.base import Sink
from edgefleet.pipeline.sources.base import Source
from edgefleet.pipeline.spec import (
    ClassifyPost,
    CtcPost,
    DbPost,
    HttpPushSourceSpec,
    ImageFolderSourceSpec,
    JsonlSinkSpec,
    MjpegSinkSpec,
    ModelSpec,
    MqttSinkSpec,
    PipelineSpec,
    SegmentPost,
    SinkSpec,
    SourceSpec,
    V4l2SourceSpec,
    VideoSinkSpec,
    VideoSourceSpec,
    WebhookSinkSpec,
    YoloPost,
)
from edgefleet.pipeline.transforms import Preprocessor

__all__ = ["ModelStage", "build_model_stage", "build_sink", "build_source", "resolve_path"]


def resolve_path(value: str, base_dir: Path, *, key: str) -> Path:
    """A spec path: ``pkg:<package>/<file>`` inside an installed Python package, else relative to the spec."""
    if value.startswith("pkg:"):
        package, _, rest = value[4:].partition("/")
        found = importlib.util.find_spec(package) if package else None
        if found is None or not found.submodule_search_locations:
            raise PipelineSpecError(
                f"{key}: Python package {package!r} is not installed (from {value!r})",
                key=key,
                code="pipeline.spec_invalid",
            )
        return Path(next(iter(found.submodule_search_locations))) / rest
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path


@dataclass
class ModelStage:
    """One model of the chain with its pre- and post-processing."""

    spec: ModelSpec
    model: Model
    preprocess: Preprocessor
    postprocess: Postprocessor
    input_name: str


def _lines(path: Path, key: str) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PipelineSpecError(f"{key}: cannot read {path}: {exc}", key=key) from exc


def _labels(
    labels: list[str] | None, labels_file: str | None, model: Model, base_dir: Path, key: str
) -> Sequence[str] | None:
    if labels is not None:
        return labels
    if labels_file is not None:
        return _lines(resolve_path(labels_file, base_dir, key=key), key)
    meta = model.metadata.get("character")
    return meta.splitlines() if meta else None


def load_model(spec: ModelSpec, base_dir: Path, key: str) -> Model:
    if spec.path is not None:
        from edgefleet.pipeline.local_model import OnnxModel

        return OnnxModel(
            resolve_path(spec.path, base_dir, key=f"{key}.path"), threads=spec.threads, spinning=spec.spinning
        )
    from edgefleet.pipeline.kserve_model import KServeModel

    assert spec.url is not None  # noqa: S101 - the spec requires path or url
    return KServeModel(spec.url, spec.model_name or spec.name)


def build_model_stage(
    spec: ModelSpec,
    index: int,
    base_dir: Path,
    *,
    loader: Callable[[ModelSpec, Path, str], Model] = load_model,
) -> ModelStage:
    key = f"models[{index}]"
    model = loader(spec, base_dir, key)
    input_names = [i.name for i in model.inputs]
    input_name = spec.preprocess.input or (input_names[0] if input_names else "input")
    if input_names and input_name not in input_names:
        raise PipelineSpecError(
            f"{key}.preprocess.input: {input_name!r} is not an input of the model; "
            f"allowed: {', '.join(input_names)}",
            key=f"{key}.preprocess.input",
        )
    post = spec.postprocess
    processor: Postprocessor
    if isinstance(post, ClassifyPost):
        processor = Classify(
            post, _labels(post.labels, post.labels_file, model, base_dir, f"{key}.postprocess")
        )
    elif isinstance(post, YoloPost):
        processor = YoloDetect(
            post, _labels(post.labels, post.labels_file, model, base_dir, f"{key}.postprocess")
        )
    elif isinstance(post, SegmentPost):
        processor = Segment(
            post, _labels(post.labels, post.labels_file, model, base_dir, f"{key}.postprocess")
        )
    elif isinstance(post, DbPost):
        processor = DbTextDetect(post)
    else:
        assert isinstance(post, CtcPost)  # noqa: S101 - the union is closed
        if post.dictionary is not None:
            dictionary = _lines(
                resolve_path(post.dictionary, base_dir, key=f"{key}.postprocess.dictionary"), key
            )
        elif "character" in model.metadata:
            dictionary = model.metadata["character"].splitlines()
        else:
            raise PipelineSpecError(
                f"{key}.postprocess.dictionary: required (the model carries no 'character' metadata)",
                key=f"{key}.postprocess.dictionary",
            )
        processor = CtcDecode(post, dictionary)
    return ModelStage(spec, model, Preprocessor(spec.preprocess), processor, input_name)


def build_source(spec: SourceSpec, base_dir: Path, *, policy: str) -> Source:
    if isinstance(spec, VideoSourceSpec):
        from edgefleet.pipeline.sources.video import VideoSource

        realtime = spec.realtime if spec.realtime is not None else policy == "latest"
        return VideoSource(spec, base_dir=base_dir, realtime=realtime)
    if isinstance(spec, ImageFolderSourceSpec):
        from edgefleet.pipeline.sources.images import ImageFolderSource

        return ImageFolderSource(spec, base_dir=base_dir)
    if isinstance(spec, HttpPushSourceSpec):
        from edgefleet.pipeline.sources.push import HttpPushSource

        return HttpPushSource(spec)
    assert isinstance(spec, V4l2SourceSpec)  # noqa: S101 - the union is closed
    from edgefleet.pipeline.sources.v4l2 import V4l2Source

    return V4l2Source(spec)


def build_sink(spec: SinkSpec, base_dir: Path, *, pipeline: str) -> Sink:
    if isinstance(spec, JsonlSinkSpec):
        from edgefleet.pipeline.sinks.files import JsonlSink

        return JsonlSink(resolve_path(spec.path, base_dir, key="sinks.path"))
    if isinstance(spec, MqttSinkSpec):
        from edgefleet.pipeline.sinks.mqtt import MqttSink

        return MqttSink(spec, pipeline=pipeline)
    if isinstance(spec, WebhookSinkSpec):
        from edgefleet.pipeline.sinks.webhook import WebhookSink

        return WebhookSink(spec)
    if isinstance(spec, VideoSinkSpec):
        from edgefleet.pipeline.sinks.video import VideoFileSink

        return VideoFileSink(spec, resolve_path(spec.path, base_dir, key="sinks.path"))
    assert isinstance(spec, MjpegSinkSpec)  # noqa: S101 - the union is closed
    from edgefleet.pipeline.sinks.preview import MjpegPreviewSink

    return MjpegPreviewSink(spec)


def build_all(spec: PipelineSpec, base_dir: Path) -> tuple[list[Source], list[ModelStage], list[Sink]]:
    policy = spec.pipeline.policy
    sources = [build_source(s, base_dir, policy=policy) for s in spec.sources]
    stages = [build_model_stage(m, i, base_dir) for i, m in enumerate(spec.models)]
    sinks = [build_sink(s, base_dir, pipeline=spec.pipeline.name) for s in spec.sinks]
    return sources, stages, sinks
