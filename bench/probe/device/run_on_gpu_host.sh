#!/usr/bin/env bash
# Probe a real NVIDIA host and keep what it reported beside the driver's own view.
#
#   bench/probe/device/run_on_gpu_host.sh OUTDIR
#
# Needs python3 with edgefleet's base dependencies importable (PYTHONPATH may point at src/ and at a
# folder of unpacked wheels). Writes probe.json, probe.txt, nvidia-smi.txt and the probe tests' output.
set -uo pipefail
out="${1:?usage: $0 OUTDIR}"
mkdir -p "$out"
export PYTHONPATH="$(cd "$(dirname "$0")/../../.." && pwd)/src${PYTHONPATH:+:$PYTHONPATH}"
python3 -m edgefleet probe --json >"$out/probe.json" 2>"$out/probe.stderr"; echo "probe --json rc=$?"
COLUMNS=120 python3 -m edgefleet probe >"$out/probe.txt" 2>&1; echo "probe rc=$?"
{ nvidia-smi --query-gpu=name,pci.bus_id,driver_version,memory.total,power.draw,temperature.gpu,utilization.gpu --format=csv
  uname -a; python3 -c 'import onnxruntime as o; print("onnxruntime", o.__version__, o.get_available_providers())'
} >"$out/nvidia-smi.txt" 2>&1
python3 -m pytest -q -p no:cacheprovider tests/integration/probe tests/unit/probe >"$out/pytest.txt" 2>&1; echo "pytest rc=$?"
tail -3 "$out/pytest.txt"
