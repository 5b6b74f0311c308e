#!/usr/bin/env bash
# Pages per second of `pagefleet ocr` on the CPU and on a CUDA GPU (CUDA and
# TensorRT providers), same binary (built with `--features cuda`), same
# documents, one run each.
#
#   bench/gpu-bench.sh PAGEFLEET_BIN SAMPLES_DIR [COPIES]
#
# The runtime home must hold the GPU build of ONNX Runtime
# (`scripts/bootstrap --gpu`); CUDA 13 and cuDNN 9 libraries must be on
# LD_LIBRARY_PATH. Every PDF and image of SAMPLES_DIR is read COPIES times
# (default 10) so that model loading is a small part of the wall time, which
# includes it. Also prints how far the GPU's text is from the CPU's (CER).
set -euo pipefail
bin=$1
samples=$2
copies=${3:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

docs=()
for _ in $(seq "$copies"); do docs+=("$samples"/*.pdf "$samples"/*.png); done
run() { # name flags...
  local out=$work/$1 start end
  start=$(date +%s.%N)
  "$bin" ocr --quiet --out "$out" "${@:2}" "${docs[@]}" >/dev/null 2>"$work/$1.log" || {
    echo "$1 failed:"; tail -5 "$work/$1.log"; return 0; }
  end=$(date +%s.%N)
  pages=$(python3 -c 'import glob, json, sys
print(sum(json.load(open(f))["metrics"]["pages_processed"] for f in glob.glob(sys.argv[1] + "/*/result.json")))' "$out")
  python3 -c 'import sys; n, p, a, b = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
print(f"| {n} | {p} | {b - a:.1f} | {p / (b - a):.2f} |")' "$1" "$pages" "$start" "$end"
}

echo "| run | pages | wall s | pages/s |"
echo "|---|---|---|---|"
cores=$(nproc)
run "cpu-${cores}x1" --slots "$cores" --intra-threads 1
for slots in 1 2 4; do
  run "cuda-${slots}slot" --execution-provider cuda --slots "$slots" --intra-threads 1
done
run "cuda-2slot-fast-latin" --execution-provider cuda --slots 2 --intra-threads 1 --profile fast-latin
# TensorRT (needs its libraries, libnvinfer.so.10, on LD_LIBRARY_PATH): the
# first run builds and caches an engine per model, the second reads them.
run "tensorrt-2slot-build" --execution-provider tensorrt --slots 2 --intra-threads 1
run "tensorrt-2slot" --execution-provider tensorrt --slots 2 --intra-threads 1
run "cpu-${cores}x1-fast-latin" --slots "$cores" --intra-threads 1 --profile fast-latin
run "cuda-2slot-accurate" --execution-provider cuda --slots 2 --intra-threads 1 --profile accurate
run "cpu-${cores}x1-accurate" --slots "$cores" --intra-threads 1 --profile accurate

# The GPU reads what the CPU reads.
python3 - "$work" "$cores" <<'PY'
import difflib, glob, os, sys
work, cores = sys.argv[1], sys.argv[2]
def text(run):
    return "".join(open(f).read() for f in sorted(glob.glob(f"{work}/{run}/*/combined.txt")))
cpu, gpu = text(f"cpu-{cores}x1"), text("cuda-2slot")
if cpu and gpu:
    m = difflib.SequenceMatcher(None, cpu, gpu, autojunk=False)
    same = sum(b.size for b in m.get_matching_blocks())
    print(f"GPU vs CPU text: {len(cpu)} chars, {100 * (1 - same / max(len(cpu), 1)):.2f}% differ")
PY
