#!/usr/bin/env bash
# Pipeline overhead: `pagefleet run` (private nats-server, every stage in one
# process, page images through the local object store) against `pagefleet ocr`
# (the bare engine) on the same files, with 1 and 2 inference slots, in one run.
#
#   bench/pipeline-bench.sh [SAMPLES_DIR] [ROUNDS]   (default: ../shared/samples, 2)
#
# Each configuration runs ROUNDS times; the table shows the fastest wall time.
set -euo pipefail
cd "$(dirname "$0")/.."
samples=$(cd "${1:-../shared/samples}" && pwd)
rounds=${2:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
scripts/bootstrap >/dev/null
cargo build --release -q
pdfs=("$samples"/*.pdf)
# Pages of the sample PDFs: one truth file per page.
pages=$(find "$samples/truth" -name '*.txt' | wc -l)

best() { # label command...: fastest wall seconds over the rounds
  shift
  local best=""
  for _ in $(seq "$rounds"); do
    rm -rf "$work/out" "$work/data"
    /usr/bin/time -f '%e' -o "$work/t" "$@" >/dev/null 2>&1
    t=$(cat "$work/t")
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
  done
  echo "$best"
}

echo "| slots | pagefleet ocr s | pagefleet run s | overhead | run pages/s |"
echo "|---|---|---|---|---|"
for slots in 1 2; do
  ocr=$(best ocr target/release/pagefleet ocr -q --slots "$slots" --out "$work/out" "${pdfs[@]}")
  run=$(best run target/release/pagefleet run -q --workers "$slots" --data "$work/data" --out "$work/out" "${pdfs[@]}")
  printf '| %d | %.2f | %.2f | %+.1f%% | %.2f |\n' "$slots" "$ocr" "$run" \
    "$(echo "100 * ($run - $ocr) / $ocr" | bc -l)" "$(echo "$pages / $run" | bc -l)"
done
