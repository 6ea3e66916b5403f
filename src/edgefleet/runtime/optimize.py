"""Offline model optimization: ORT graph optimization, INT8 quantization, FP16 conversion.

Each mode writes a new model and checks it against the original on the same sample inputs:
file size, p50 latency of both (interleaved rounds on the same session settings, so a noisy machine
hurts both alike) and the accuracy delta (max and mean absolute difference per output; top-1
agreement for classifier-shaped outputs ``[N, C]``).

- ``graph``: ONNX Runtime's own optimizer, saved with ``optimized_model_filepath``. ``extended``
  (the default) keeps the model portable across CPUs; ``all`` adds layout transforms tied to this
  machine's instruction set.
- ``int8-dynamic``: ``onnxruntime.quantization.quantize_dynamic`` (weights INT8, activations
  quantized at run time), after ``quant_pre_process`` (shape inference and cleanup).
- ``int8-static``: ``quantize_static`` in QDQ format, per channel, calibrated (MinMax) on a folder
  of ``.npy``/``.npz`` samples or images.
- ``fp16``: ``onnxruntime.transformers.float16`` (shipped inside the onnxruntime wheel, maintained
  with it; inputs and outputs stay FP32). Only for providers with FP16 kernels: the CPU provider
  has few, so there it is refused.

The output never replaces the input and an existing file only with ``force``; it is written to a
temporary file beside the target and renamed, so a failure leaves nothing behind.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edgefleet.errors import ConflictError, InvalidInputError, NotFoundError, UnsupportedError

__all__ = [
    "FP16_PROVIDERS",
    "IMAGE_SUFFIXES",
    "Mode",
    "OptimizeError",
    "OptimizePlan",
    "compare_outputs",
    "load_samples",
    "optimize_model",
]

Mode = Literal["graph", "int8-dynamic", "int8-static", "fp16"]
MODES: tuple[Mode, ...] = ("graph", "int8-dynamic", "int8-static", "fp16")

FP16_PROVIDERS = frozenset(
    {
        "CUDAExecutionProvider",
        "TensorrtExecutionProvider",
        "ROCMExecutionProvider",
        "MIGraphXExecutionProvider",
        "DmlExecutionProvider",
        "CoreMLExecutionProvider",
        "QNNExecutionProvider",
        "OpenVINOExecutionProvider",
        "WebGpuExecutionProvider",
    }
)
"""Providers whose kernels run FP16 natively; FP16 elsewhere is slower than FP32, not faster."""

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
_ARRAY_SUFFIXES = frozenset({".npy", ".npz"})

Array = np.ndarray[Any, Any]
Feeds = dict[str, Array]


class OptimizeError(InvalidInputError):
    """A model, option or calibration folder ``edgefleet optimize`` cannot use (``optimize.*``)."""

    default_code = "optimize.invalid_input"


@dataclass(frozen=True)
class OptimizePlan:
    """One ``edgefleet optimize`` invocation."""

    model: Path
    output: Path
    mode: Mode = "graph"
    level: Literal["basic", "extended", "all"] = "extended"
    calibration: Path | None = None
    samples: Path | None = None
    """Folder of sample inputs for the accuracy check; default: the calibration folder, else random."""
    sample_count: int = 8
    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    provider: str = "CPUExecutionProvider"
    threads: int | None = None
    latency_runs: int = 30
    image_mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    image_std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    force: bool = False


# --- checks before anything is written -----------------------------------------------------------


def _check_paths(plan: OptimizePlan) -> None:
    if not plan.model.is_file():
        raise NotFoundError(
            f"model {plan.model} does not exist", code="optimize.model_missing", path=str(plan.model)
        )
    if plan.model.resolve() == plan.output.resolve() or (
        plan.output.exists() and plan.model.samefile(plan.output)
    ):
        raise ConflictError(
            f"output {plan.output} is the input model: write the optimized model to a new file",
            code="optimize.output_is_input",
            path=str(plan.output),
        )
    if plan.output.exists() and not plan.force:
        raise ConflictError(
            f"output {plan.output} exists; pass --force to replace it",
            code="optimize.output_exists",
            path=str(plan.output),
        )
    if plan.output.exists() and not plan.output.is_file():
        raise ConflictError(
            f"output {plan.output} is not a file", code="optimize.output_exists", path=str(plan.output)
        )
    if not plan.output.parent.is_dir():
        raise OptimizeError(
            f"output folder {plan.output.parent} does not exist",
            code="optimize.output_dir",
            path=str(plan.output),
        )
    if plan.mode not in MODES:
        raise OptimizeError(f"unknown mode {plan.mode!r}", code="optimize.mode", allowed=list(MODES))
    if plan.mode == "int8-static" and plan.calibration is None:
        raise OptimizeError(
            "static INT8 needs --calibration DIR (.npy/.npz samples or images)",
            code="optimize.calibration_missing",
        )
    if plan.calibration is not None and plan.mode != "int8-static":
        raise OptimizeError(
            f"--calibration is for static INT8 only, the mode is {plan.mode}",
            code="optimize.calibration_unused",
        )
    if plan.mode == "fp16" and plan.provider not in FP16_PROVIDERS:
        raise UnsupportedError(
            f"FP16 is refused for {plan.provider}: it has FP16 kernels for few operators, "
            "so the model would run through casts and slower than FP32; "
            "on CPU use --int8, or pass a --provider with FP16 kernels",
            code="optimize.fp16_unsupported",
            provider=plan.provider,
            allowed=sorted(FP16_PROVIDERS),
        )


def _session(
    model: Path | bytes,
    provider: str,
    threads: int | None,
    *,
    level: str = "all",
    save_to: Path | None = None,
) -> Any:
    import onnxruntime as ort

    if provider not in ort.get_available_providers():
        raise UnsupportedError(
            f"execution provider {provider} is not in this ONNX Runtime build",
            code="optimize.provider_unavailable",
            allowed=ort.get_available_providers(),
        )
    options = ort.SessionOptions()
    options.graph_optimization_level = {
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    if threads is None:
        from edgefleet.probe.cpu_budget import read_cpu_budget

        threads = read_cpu_budget().threads
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: ORT's graph-cleanup warnings are noise here
    if save_to is not None:
        options.optimized_model_filepath = str(save_to)
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=[provider])


def _load_original(plan: OptimizePlan) -> Any:
    try:
        return _session(plan.model, plan.provider, plan.threads)
    except UnsupportedError:
        raise
    except Exception as exc:  # ORT raises pybind types for every load failure: bad protobuf, bad graph
        raise OptimizeError(
            f"ONNX Runtime cannot load {plan.model}: {str(exc).strip()[:300]}",
            code="optimize.model_invalid",
            path=str(plan.model),
        ) from exc


# --- sample inputs -------------------------------------------------------------------------------


def _specs(session: Any) -> list[Any]:
    from edgefleet.runtime.loadgen.inputs import TensorSpec, v2_datatype

    out = []
    for i in session.get_inputs():
        dims = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in i.shape)
        out.append(TensorSpec(i.name, v2_datatype(i.type, name=i.name), dims))
    return out


def load_samples(
    folder: Path,
    specs: Sequence[Any],
    *,
    limit: int | None = None,
    image_mean: Sequence[float] = (0.0, 0.0, 0.0),
    image_std: Sequence[float] = (1.0, 1.0, 1.0),
) -> list[Feeds]:
    """One feed dict per file in ``folder`` (sorted): ``.npy`` (single-input models), ``.npz`` keyed by
    input name, or images resized to the input's fixed H x W, scaled to [0, 1], then ``(x - mean) / std``.
    A sample without a batch dimension gets one.
    """
    if not folder.is_dir():
        raise OptimizeError(
            f"sample folder {folder} does not exist", code="optimize.samples", path=str(folder)
        )
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _ARRAY_SUFFIXES | IMAGE_SUFFIXES)
    if not files:
        raise OptimizeError(
            f"{folder} holds no .npy, .npz or image files ({', '.join(sorted(IMAGE_SUFFIXES))})",
            code="optimize.samples",
            path=str(folder),
        )
    return [_load_sample(p, specs, image_mean, image_std) for p in files[:limit]]


def _load_sample(path: Path, specs: Sequence[Any], mean: Sequence[float], std: Sequence[float]) -> Feeds:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return {specs[0].name: _load_image(path, specs, mean, std)}
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise OptimizeError(
            f"sample {path} is not a readable {suffix}: {exc}", code="optimize.samples", path=str(path)
        ) from exc
    if isinstance(loaded, np.ndarray):
        if len(specs) != 1:
            raise OptimizeError(
                f"{path} is one array but the model has {len(specs)} inputs: use .npz keyed by input name",
                code="optimize.samples",
                path=str(path),
            )
        arrays = {specs[0].name: loaded}
    else:
        with loaded:
            arrays = {k: loaded[k] for k in loaded.files}
    feeds: Feeds = {}
    for spec in specs:
        if spec.name not in arrays:
            raise OptimizeError(
                f"{path} has no array {spec.name!r} (it holds {sorted(arrays)})",
                code="optimize.samples",
                path=str(path),
            )
        array = arrays[spec.name]
        if array.ndim == len(spec.shape) - 1:
            array = array[np.newaxis]
        if array.ndim != len(spec.shape) or any(
            w >= 0 and w != h for w, h in zip(spec.shape, array.shape, strict=True)
        ):
            raise OptimizeError(
                f"{path}: array {spec.name!r} has shape {list(array.shape)}, "
                f"the model expects {list(spec.shape)}",
                code="optimize.samples",
                path=str(path),
            )
        feeds[spec.name] = array.astype(spec.dtype, copy=False)
    return feeds


def _load_image(path: Path, specs: Sequence[Any], mean: Sequence[float], std: Sequence[float]) -> Array:
    if len(specs) != 1:
        raise OptimizeError(
            f"image samples need a single-input model; this one has {len(specs)}",
            code="optimize.samples",
            path=str(path),
        )
    spec = specs[0]
    shape = spec.shape
    if len(shape) != 4 or shape[1] not in (1, 3) or shape[2] < 0 or shape[3] < 0:
        raise OptimizeError(
            "image samples need an input [N, C, H, W] with C in (1, 3) and fixed H, W; "
            f"{spec.name} is {list(shape)}",
            code="optimize.samples",
            path=str(path),
        )
    try:
        from PIL import Image
    except ImportError as exc:
        raise UnsupportedError(
            "image samples need Pillow (pip install pillow); .npy/.npz samples do not",
            code="optimize.pillow_missing",
        ) from exc
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB" if shape[1] == 3 else "L").resize((shape[3], shape[2]))
            pixels = np.asarray(rgb, dtype=np.float32) / 255.0
    except OSError as exc:
        raise OptimizeError(
            f"image {path} cannot be read: {exc}", code="optimize.samples", path=str(path)
        ) from exc
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
    channels = shape[1]
    scaled = (pixels - np.asarray(mean[:channels], np.float32)) / np.asarray(std[:channels], np.float32)
    return scaled.transpose(2, 0, 1)[np.newaxis].astype(spec.dtype)


def _random_samples(specs: Sequence[Any], plan: OptimizePlan) -> list[Feeds]:
    from edgefleet.runtime.loadgen.errors import BenchInputError
    from edgefleet.runtime.loadgen.inputs import generate_inputs

    try:
        return [generate_inputs(specs, overrides=plan.shapes, seed=i) for i in range(plan.sample_count)]
    except BenchInputError as exc:
        raise OptimizeError(exc.message, code="optimize.sample_shape", **exc.fields) from exc


# --- the transforms ------------------------------------------------------------------------------


class _Calibration:
    """``CalibrationDataReader`` over a list of feed dicts."""

    def __init__(self, feeds: Sequence[Feeds]) -> None:
        self._it: Iterator[Feeds] = iter(feeds)

    def get_next(self) -> Feeds | None:
        return next(self._it, None)

    def rewind(self) -> None:  # quantize_static may call it between calibration passes
        return None


def _preprocessed(model: Path, workdir: Path) -> Path:
    """``quant_pre_process`` output; the model itself when pre-processing cannot handle it."""
    from onnxruntime.quantization import quant_pre_process

    out = workdir / "pre.onnx"
    try:
        quant_pre_process(str(model), str(out), skip_symbolic_shape=True)
    except Exception:  # noqa: BLE001 - pre-processing is an improvement, not a requirement: quantize the original
        return model
    return out


def _transform(plan: OptimizePlan, workdir: Path, calibration: Sequence[Feeds]) -> Path:
    out = workdir / "out.onnx"
    if plan.mode == "graph":
        _session(plan.model, plan.provider, plan.threads, level=plan.level, save_to=out)
    elif plan.mode == "int8-dynamic":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(_preprocessed(plan.model, workdir)), str(out), weight_type=QuantType.QInt8)
    elif plan.mode == "int8-static":
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

        quantize_static(
            str(_preprocessed(plan.model, workdir)),
            str(out),
            _Calibration(calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
        )
    else:
        import onnx

        out.write_bytes(convert_fp16(onnx.load(str(plan.model))).SerializeToString())
    return out


def convert_fp16(model: Any) -> Any:
    """``model`` (an ``onnx.ModelProto``) with FP32 weights and compute in FP16, FP32 inputs/outputs kept."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(model, keep_io_types=True)


# --- measuring -----------------------------------------------------------------------------------


def _p50_ms(session: Any, feeds: Feeds, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        session.run(None, feeds)
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1e6


def _latencies(original: Any, optimized: Any, feeds: Feeds, runs: int) -> tuple[float, float]:
    """p50 of both models, measured in interleaved rounds after a warm-up of each."""
    for s in (original, optimized):
        for _ in range(3):
            s.run(None, feeds)
    rounds = 5
    per_round = max(1, runs // rounds)
    a: list[float] = []
    b: list[float] = []
    for _ in range(rounds):
        a.append(_p50_ms(original, feeds, per_round))
        b.append(_p50_ms(optimized, feeds, per_round))
    return statistics.median(a), statistics.median(b)


def compare_outputs(
    names: Sequence[str], reference: Sequence[Sequence[Array]], candidate: Sequence[Sequence[Array]]
) -> dict[str, Any]:
    """Accuracy delta over samples: per output max/mean abs diff; top-1 agreement for ``[N, C]`` outputs."""
    per_output: dict[str, dict[str, float]] = {}
    top1: dict[str, float] = {}
    for i, name in enumerate(names):
        ref = [np.asarray(r[i], dtype=np.float64) for r in reference]
        got = [np.asarray(c[i], dtype=np.float64) for c in candidate]
        diffs = [np.abs(r - g) for r, g in zip(ref, got, strict=True) if r.shape == g.shape]
        if len(diffs) != len(ref):
            raise OptimizeError(
                f"output {name!r} changed shape after optimization", code="optimize.output_shape", output=name
            )
        per_output[name] = {
            "max_abs_diff": float(max(d.max() for d in diffs)) if diffs and diffs[0].size else 0.0,
            "mean_abs_diff": float(np.mean([d.mean() for d in diffs])) if diffs and diffs[0].size else 0.0,
        }
        if ref and ref[0].ndim == 2 and ref[0].shape[1] > 1:
            agree = sum(
                int((r.argmax(axis=1) == g.argmax(axis=1)).sum()) for r, g in zip(ref, got, strict=True)
            )
            top1[name] = agree / sum(r.shape[0] for r in ref)
    return {"outputs": per_output, "top1_agreement": top1}


# --- the service ---------------------------------------------------------------------------------


def optimize_model(plan: OptimizePlan, *, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Write the optimized model to ``plan.output`` and return the report (sizes, latency, accuracy)."""
    _check_paths(plan)
    original = _load_original(plan)
    specs = _specs(original)
    names = [o.name for o in original.get_outputs()]
    calibration: list[Feeds] = []
    if plan.calibration is not None:
        progress(f"reading calibration samples from {plan.calibration}")
        calibration = load_samples(
            plan.calibration, specs, image_mean=plan.image_mean, image_std=plan.image_std
        )
    if plan.samples is not None:
        samples = load_samples(
            plan.samples, specs, limit=plan.sample_count, image_mean=plan.image_mean, image_std=plan.image_std
        )
        sample_source = str(plan.samples)
    elif calibration:
        samples, sample_source = calibration[: plan.sample_count], str(plan.calibration)
    else:
        samples, sample_source = _random_samples(specs, plan), f"random x{plan.sample_count}"

    with tempfile.TemporaryDirectory(prefix=".edgefleet-optimize-", dir=plan.output.parent) as tmp:
        progress(f"{plan.mode}: transforming {plan.model.name}")
        try:
            produced = _transform(plan, Path(tmp), calibration)
            optimized = _session(produced, plan.provider, plan.threads)
        except (UnsupportedError, OptimizeError):
            raise
        except Exception as exc:  # quantizer and ORT failures: the model is not one this mode can handle
            raise OptimizeError(
                f"{plan.mode} failed on {plan.model}: {str(exc).strip()[:300]}",
                code="optimize.transform_failed",
                mode=plan.mode,
            ) from exc
        progress("comparing outputs and latency against the original")
        reference = [original.run(None, f) for f in samples]
        candidate = [optimized.run(None, f) for f in samples]
        accuracy = compare_outputs(names, reference, candidate)
        before, after = _latencies(original, optimized, samples[0], plan.latency_runs)
        size_in = plan.model.stat().st_size
        size_out = produced.stat().st_size
        produced.replace(
            plan.output
        )  # atomic; replaces an existing output only under --force (checked above)

    return {
        "input": {"path": str(plan.model), "size_bytes": size_in},
        "output": {"path": str(plan.output), "size_bytes": size_out},
        "mode": plan.mode,
        "level": plan.level if plan.mode == "graph" else None,
        "provider": plan.provider,
        "size_ratio": round(size_out / size_in, 4) if size_in else None,
        "latency_ms": {
            "original_p50": round(before, 4),
            "optimized_p50": round(after, 4),
            "speedup": round(before / after, 4) if after else None,
        },
        "accuracy": {"samples": len(samples), "source": sample_source, **accuracy},
    }
