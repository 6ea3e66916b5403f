"""One bench run from start to report: target, inputs, a closed loop per concurrency, the JSON."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefleet.runtime.loadgen.errors import BenchInputError
from edgefleet.runtime.loadgen.inputs import generate_inputs, load_input_file
from edgefleet.runtime.loadgen.report import build_report, machine_info
from edgefleet.runtime.loadgen.runner import RunResult, run_closed_loop
from edgefleet.runtime.loadgen.targets import Target, WireProtocol, make_target

__all__ = ["BenchPlan", "run_bench"]


@dataclass(frozen=True)
class BenchPlan:
    """Everything one ``edgefleet bench`` invocation measures."""

    model: str
    """An .onnx path for ``ort``; the model name on the endpoint otherwise."""
    protocol: WireProtocol = "ort"
    url: str | None = None
    version: str = ""
    concurrency: Sequence[int] = (1,)
    duration_s: float = 10.0
    warmup_s: float = 2.0
    batch: int = 1
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    input_file: Path | None = None
    seed: int = 0
    timeout_s: float = 30.0
    providers: Sequence[str] = ("CPUExecutionProvider",)
    threads: int | None = None
    spinning: bool = True


def run_bench(
    plan: BenchPlan,
    *,
    on_result: Callable[[RunResult], None] | None = None,
    make: Callable[..., Target] = make_target,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> tuple[dict[str, Any], list[RunResult]]:
    """Run ``plan`` and return the JSON report and the rows (``on_result`` sees each row as it ends)."""
    if not plan.concurrency or any(c < 1 for c in plan.concurrency):
        raise BenchInputError(
            f"--concurrency takes positive integers, got {list(plan.concurrency)}",
            code="bench.invalid_concurrency",
        )
    started = now()
    target = make(
        plan.protocol,
        model=plan.model,
        url=plan.url,
        version=plan.version,
        timeout_s=plan.timeout_s,
        providers=plan.providers,
        threads=plan.threads,
        spinning=plan.spinning,
    )
    try:
        specs = target.input_specs()
        if plan.input_file is not None:
            if plan.shapes:
                raise BenchInputError(
                    "--shape and --input-file exclude each other: the file fixes the shapes",
                    code="bench.invalid_option",
                )
            inputs = load_input_file(plan.input_file, specs)
            source = str(plan.input_file)
        else:
            inputs = generate_inputs(specs, batch=plan.batch, overrides=plan.shapes, seed=plan.seed)
            source = f"random(seed={plan.seed})"
        results: list[RunResult] = []
        for concurrency in plan.concurrency:
            result = run_closed_loop(
                target, inputs, concurrency=concurrency, duration_s=plan.duration_s, warmup_s=plan.warmup_s
            )
            results.append(result)
            if on_result is not None:
                on_result(result)
        report = build_report(
            target=target.describe(),
            inputs={
                "source": source,
                "tensors": [
                    {"name": s.name, "datatype": s.datatype, "shape": list(inputs[s.name].shape)}
                    for s in specs
                ],
                "request_bytes": int(sum(_nbytes(a) for a in inputs.values())),
            },
            load={
                "mode": "closed-loop",
                "concurrency": list(plan.concurrency),
                "duration_s": plan.duration_s,
                "warmup_s": plan.warmup_s,
                "timeout_s": plan.timeout_s,
            },
            results=results,
            machine=machine_info(),
            started_at=started,
        )
    finally:
        target.close()
    return report, results


def _nbytes(array: np.ndarray[Any, Any]) -> int:
    if array.dtype == np.object_:
        return int(sum(len(x) if isinstance(x, bytes) else len(str(x)) for x in array.flat))
    return int(array.nbytes)
