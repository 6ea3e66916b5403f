"""The memory of a bare ONNX Runtime process holding MODEL, printed as PSS in kB.

It is the baseline a server's idle memory is compared against ("besides the model"). Prints two
numbers: right after the session is created (what an idle server that has not run yet holds) and
after one run (ORT's arena grown to the input size).
Usage: python rss_probe.py MODEL INPUT_SHAPES_JSON
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort


def pss_kb() -> int:
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    model, shapes = sys.argv[1], json.loads(sys.argv[2])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    loaded = pss_kb()
    feeds = {
        i.name: np.zeros(shapes.get(i.name) or [d if isinstance(d, int) else 1 for d in i.shape], np.float32)
        for i in session.get_inputs()
    }
    session.run(None, feeds)
    print(loaded, pss_kb())


if __name__ == "__main__":
    main()
