#!/usr/bin/env bash
# Benchmark of `pagefleet ocr` (both profiles) beside Tesseract 5 on the same
# documents at 200 DPI, in one run, on this machine.
#
#   bench/ocr-bench.sh [SAMPLES_DIR]     (default: ../shared/samples)
#   bench/ocr-bench.sh tests/data/layout   the layout development set
#
# SAMPLES_DIR holds the PDFs and truth/<doc>/<page>.txt; SCORE names the
# scorer (default: ../shared/tools/score.py).
#
# Tesseract gets the pages as 200 DPI PNGs from pdftoppm and runs with
# OMP_THREAD_LIMIT=1, one process per core (its OpenMP threading is several
# times slower). pagefleet reads the PDFs themselves, rendering them with
# PDFium at 200 DPI inside the timed run; its wall time includes loading the
# models. Quality is scored with ../shared/tools/score.py.
#
# Needs Debian's tesseract-ocr, tesseract-ocr-pol and poppler-utils, and the
# rapidfuzz package for the scorer; the script installs what is missing when
# it runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."
samples=$(cd "${1:-../shared/samples}" && pwd)
score=$(realpath "${SCORE:-../shared/tools/score.py}")
cores=$(nproc)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! command -v tesseract >/dev/null || ! command -v pdftoppm >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    tesseract-ocr tesseract-ocr-eng tesseract-ocr-pol poppler-utils >/dev/null
fi
python3 -c 'import rapidfuzz' 2>/dev/null || python3 -m pip install -q rapidfuzz
scripts/bootstrap >/dev/null
cargo build --release -q

pdfs=("$samples"/*.pdf)

# Page images for Tesseract: <doc>-<page>.png, pages counted from 1.
mkdir -p "$work/png"
for pdf in "${pdfs[@]}"; do pdftoppm -r 200 -png "$pdf" "$work/png/$(basename "$pdf" .pdf)"; done
pages=$(ls "$work/png" | wc -l)

row() { # name seconds peak_kib pred_dir
  local s
  s=$(python3 "$score" --pred "$4" --truth "$samples/truth" --json "$work/$1.json" >/dev/null && python3 - "$work/$1.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
m = d["groups"]["ALL"]["micro"]
print(f'{100*m["cer_raw"]:.2f}% | {100*m["wer_raw"]:.2f}% | {m["bow_f1"]:.3f}')
PY
)
  printf '| %s | %d | %.1f | %.2f | %s | %s |\n' "$1" "$pages" "$2" "$(echo "$pages / $2" | bc -l)" "$s" \
    "$([ "$3" = - ] && echo - || echo "$(( $3 / 1024 )) MiB")"
}

timed() { # out_prefix command...: wall seconds and peak RSS (KiB) of one command
  /usr/bin/time -f '%e %M' -o "$work/$1.time" "${@:2}" >/dev/null 2>"$work/$1.log"
}

# Tesseract: one single-threaded process per core over all page images.
mkdir -p "$work/tess"
start=$(date +%s.%N)
ls "$work/png"/*.png | OMP_THREAD_LIMIT=1 xargs -P "$cores" -I{} bash -c '
  f={}; b=$(basename "$f" .png); doc=${b%-*}; page=${b##*-}; lang=eng
  case "$doc" in *-pl) lang=pol;; esac
  mkdir -p '"$work"'/tess/$doc
  tesseract "$f" '"$work"'/tess/$doc/$(printf %03d $((10#$page))) -l $lang >/dev/null 2>&1'
tess_s=$(echo "$(date +%s.%N) - $start" | bc -l)

echo "| engine | pages | wall s | pages/s | CER | WER | BoW-F1 | peak RSS |"
echo "|---|---|---|---|---|---|---|---|"
row "tesseract 5 ($cores procs, OMP_THREAD_LIMIT=1)" "$tess_s" - "$work/tess"
for profile in fast accurate; do
  timed "$profile" target/release/pagefleet ocr -q --profile "$profile" --out "$work/$profile" "${pdfs[@]}"
  read -r secs kib <"$work/$profile.time"
  row "pagefleet $profile" "$secs" "$kib" "$work/$profile"
done
