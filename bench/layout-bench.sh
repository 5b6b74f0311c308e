#!/usr/bin/env bash
# Reading order by layout class: CER over the layout development set
# (tests/data/layout) for Tesseract 5 and for pagefleet, reading every page
# from its pixels (`--text-layer ocr`) and with every default (`auto`), per
# layout class of the set's MANIFEST.tsv, with the median and largest
# segmentation time a page (`timings.layout_ms`).
#
#   bench/layout-bench.sh [PAGEFLEET_BINARY...]
#
# With no argument it measures target/release/pagefleet (built here); name
# several binaries (an older build first) to compare them in one run.
# Tesseract gets the pages as 200 DPI PNGs from pdftoppm and runs with
# OMP_THREAD_LIMIT=1, one process per core. Needs Debian's tesseract-ocr and
# poppler-utils, and the rapidfuzz package for ../shared/tools/score.py
# (SCORE names another scorer).
set -euo pipefail
cd "$(dirname "$0")/.."
score=$(realpath "${SCORE:-../shared/tools/score.py}")
set_dir=tests/data/layout
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ $# -eq 0 ]; then
  cargo build --release -q
  set -- target/release/pagefleet
fi

columns=()
# Tesseract, one single-threaded process per core.
mkdir -p "$work/png" "$work/tesseract"
for pdf in "$set_dir"/*.pdf; do
  doc=$(basename "$pdf" .pdf)
  mkdir -p "$work/png/$doc" "$work/tesseract/$doc"
  pdftoppm -r 200 -png "$pdf" "$work/png/$doc/p"
done
find "$work/png" -name '*.png' | sort | xargs -P "$(nproc)" -I{} sh -c '
  png={}; doc=$(basename "$(dirname "$png")"); n=${png##*-}; n=${n%.png}
  OMP_THREAD_LIMIT=1 tesseract "$png" - -l eng 2>/dev/null \
    > "'"$work"'/tesseract/$doc/$(printf %03d "$(expr "$n" + 0)").txt"'
python3 "$score" --pred "$work/tesseract" --truth "$set_dir/truth" --csv "$work/tesseract.csv" >/dev/null
columns+=("tesseract=$work/tesseract.csv")

k=0
for bin in "$@"; do
  k=$((k + 1))
  for mode in ocr auto; do
    out="$work/pf$k-$mode"
    "$bin" ocr --home .pagefleet --text-layer "$mode" --out "$out" "$set_dir"/*.pdf >/dev/null 2>&1
    python3 "$score" --pred "$out" --truth "$set_dir/truth" --csv "$out.csv" >/dev/null
    columns+=("pagefleet#$k $mode=$out.csv")
  done
done

python3 - "$set_dir/MANIFEST.tsv" "${columns[@]}" <<'EOF'
import csv, glob, json, os, sys

manifest = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
layout = {(r["doc"], r["page"]): r["layout"] for r in manifest}
classes = sorted(set(layout.values()))
names, sums, times = [], [], []
for arg in sys.argv[2:]:
    name, path = arg.split("=", 1)
    names.append(name)
    total = {}
    for row in csv.DictReader(open(path)):
        for c in (layout[(row["doc"], row["page"])], "all"):
            edits, chars = total.get(c, (0, 0))
            total[c] = (edits + int(row["char_edits_raw"]), chars + int(row["ref_chars"]))
    sums.append(total)
    ms = []
    for result in glob.glob(os.path.join(path[: -len(".csv")], "*", "result.json")):
        ms += [p["timings"]["layout_ms"] for p in json.load(open(result))["pages"]]
    ms.sort()
    times.append(f"{ms[len(ms) // 2]:.2f} / {ms[-1]:.2f}" if ms else "-")
pages = {c: sum(1 for v in layout.values() if v == c) for c in classes}
pages["all"] = len(layout)
print("| layout | pages | " + " | ".join(names) + " |")
print("|---|---|" + "---|" * len(names))
for c in classes + ["all"]:
    cells = [f"{100 * s[c][0] / s[c][1]:.2f}%" for s in sums]
    print(f"| {c} | {pages[c]} | " + " | ".join(cells) + " |")
print("| layout ms, median / max | | " + " | ".join(times) + " |")
EOF
