#!/usr/bin/env bash
# Model-side speed levers of the PP-OCRv6 tiny recognizer (bench/levers.py
# says which), on the text lines pagefleet finds in the sample pages.
#
#   bench/levers.sh [SAMPLES_DIR]     (default: ../shared/samples)
#
# Renders the PDFs at 200 DPI with pdftoppm, reads them with `pagefleet ocr`
# for the line boxes, and runs bench/levers.py in a venv under
# .pagefleet/bench/ with the tools of bench/levers-requirements.txt (pinned
# by hash). ROUNDS (default 4) sets the timing rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
samples=$(cd "${1:-../shared/samples}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

command -v pdftoppm >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq poppler-utils >/dev/null; }
scripts/bootstrap >/dev/null
cargo build --release -q
venv=.pagefleet/bench/levers-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --no-deps --only-binary=:all: --require-hashes -r bench/levers-requirements.txt
fi

mkdir -p "$work/png"
for pdf in "$samples"/*.pdf; do pdftoppm -r 200 -png "$pdf" "$work/png/$(basename "$pdf" .pdf)"; done
target/release/pagefleet ocr -q --out "$work/ocr" "$work/png"/*.png >/dev/null 2>&1
"$venv/bin/python" bench/levers.py .pagefleet/models/ppocrv6/tiny/rec/rec.onnx "$work/png" "$work/ocr" \
  .pagefleet/models/ppocrv6/tiny/det/det.onnx
