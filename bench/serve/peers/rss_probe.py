"""The memory of a bare ONNX Runtime process with MODEL loaded and run once, printed as PSS in kB.

It is the baseline a server's idle memory is compared against ("besides the model").
Usage: python rss_probe.py MODEL INPUT_SHAPES_JSON
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort


def main() -> None:
    model, shapes = sys.argv[1], json.loads(sys.argv[2])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    feeds = {
        i.name: np.zeros(shapes.get(i.name) or [d if isinstance(d, int) else 1 for d in i.shape], np.float32)
        for i in session.get_inputs()
    }
    session.run(None, feeds)
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            print(line.split()[1])


if __name__ == "__main__":
    main()
