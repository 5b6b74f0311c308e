#!/usr/bin/env bash
# Benchmark of `pagefleet ocr` and `pagefleet run` with their default settings
# (profile fast, language auto) reading every page from its pixels, with each
# head named, with the accurate profile, and with every default (text layer
# auto), beside Tesseract 5 and
# faster-paddle (the same PP-OCRv6 tiny models in Rust on ONNX Runtime) on the
# same documents at 200 DPI, in one run, on this machine.
#
#   bench/ocr-bench.sh [SAMPLES_DIR...]   (default: ../shared/samples)
#   bench/ocr-bench.sh ../shared/samples tests/data/layout   both sets as one
#
# Each SAMPLES_DIR holds PDFs and truth/<doc>/<page>.txt (document names
# differ between sets); SCORE names the scorer (default:
# ../shared/tools/score.py). The CJK column counts the Han, kana, CJK
# punctuation and full-width characters in an engine's text: these sets are
# Latin script, so every one is a look-alike.
#
# Tesseract gets the pages as 200 DPI PNGs from pdftoppm and runs with
# OMP_THREAD_LIMIT=1, one process per core (its OpenMP threading is several
# times slower). faster-paddle (PyPI faster-paddle==1.0.4, pinned by hash,
# installed into .pagefleet/bench/) reads the same PNGs in one process with
# its own scheduler over every core: OcrEngine(model_size="tiny").ocr(png).
# pagefleet reads the PDFs themselves, rendering them with PDFium at 200 DPI
# inside the timed run. Every wall time includes loading the models; CPU s
# per page is user + system time over the pages. Quality is scored with
# ../shared/tools/score.py.
#
# Needs Debian's tesseract-ocr, tesseract-ocr-pol and poppler-utils, and the
# rapidfuzz package for the scorer; the script installs what is missing when
# it runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."
score=$(realpath "${SCORE:-../shared/tools/score.py}")
cores=$(nproc)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The sets as one: their PDFs, and one truth folder of links to theirs.
pdfs=()
mkdir -p "$work/truth"
for set in "${@:-../shared/samples}"; do
  set=$(cd "$set" && pwd)
  pdfs+=("$set"/*.pdf)
  ln -s "$set"/truth/* "$work/truth/"
done

if ! command -v tesseract >/dev/null || ! command -v pdftoppm >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    tesseract-ocr tesseract-ocr-eng tesseract-ocr-pol poppler-utils >/dev/null
fi
python3 -c 'import rapidfuzz' 2>/dev/null || python3 -m pip install -q rapidfuzz
scripts/bootstrap >/dev/null
cargo build --release -q

# faster-paddle, pinned and checked like the runtime; the tiny models ship in
# the wheel, so it needs no download at run time.
peer=.pagefleet/bench/faster-paddle-1.0.4
if [ ! -d "$peer/faster_paddle" ]; then
  echo "faster-paddle==1.0.4 --hash=sha256:cf6218a183da869c6fb8e7ddceabc224b18361c1f1bc6763977171bb19fbb177" >"$work/peer.txt"
  python3 -m pip install -q --no-deps --only-binary=:all: --require-hashes --target "$peer" -r "$work/peer.txt"
  # The wheel's software bill of materials names the folder it was built in
  # on its maker's machine; nothing here reads it.
  rm -rf "$peer"/*.dist-info/sboms
fi

# Page images for Tesseract: <doc>-<page>.png, pages counted from 1.
mkdir -p "$work/png"
for pdf in "${pdfs[@]}"; do pdftoppm -r 200 -png "$pdf" "$work/png/$(basename "$pdf" .pdf)"; done
pages=$(ls "$work/png" | wc -l)

row() { # name seconds peak_kib pred_dir cpu_seconds
  local s
  s=$(python3 "$score" --pred "$4" --truth "$work/truth" --json "$work/$1.json" >/dev/null && python3 - "$work/$1.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
m = d["groups"]["ALL"]["micro"]
print(f'{100*m["cer_raw"]:.2f}% | {100*m["wer_raw"]:.2f}% | {m["bow_f1"]:.3f}')
PY
)
  s="$s | $(cat "$4"/*/[0-9]*.txt | { grep -oP '[\x{3000}-\x{30FF}\x{3400}-\x{9FFF}\x{AC00}-\x{D7AF}\x{F900}-\x{FAFF}\x{FF00}-\x{FFEF}]' || true; } | wc -l)"
  printf '| %s | %d | %.1f | %.2f | %.2f | %s | %s |\n' "$1" "$pages" "$2" "$(echo "$pages / $2" | bc -l)" \
    "$(echo "$5 / $pages" | bc -l)" "$s" "$([ "$3" = - ] && echo - || echo "$(( $3 / 1024 )) MiB")"
}

timed() { # out_prefix command...: wall seconds, peak RSS (KiB) and CPU seconds of one command
  /usr/bin/time -f '%e %M %U %S' -o "$work/$1.time" "${@:2}" >/dev/null 2>"$work/$1.log"
}

# Tesseract: one single-threaded process per core over all page images
# (its peak RSS is one process's, so it is left out).
mkdir -p "$work/tess"
timed tess bash -c 'ls "$1"/png/*.png | OMP_THREAD_LIMIT=1 xargs -P "$2" -I{} bash -c '"'"'
  f={}; b=$(basename "$f" .png); doc=${b%-*}; page=${b##*-}; lang=eng
  case "$doc" in *-pl) lang=pol;; esac
  mkdir -p "$0"/tess/$doc
  tesseract "$f" "$0"/tess/$doc/$(printf %03d $((10#$page))) -l $lang >/dev/null 2>&1'"'"' "$1"' _ "$work" "$cores"

# faster-paddle: one engine over every page image, text as it reconstructs it.
PYTHONPATH="$peer" timed peer python3 bench/faster-paddle.py "$work/png" "$work/peer"

echo "| engine | pages | wall s | pages/s | CPU s/page | CER | WER | BoW-F1 | CJK | peak RSS |"
echo "|---|---|---|---|---|---|---|---|---|---|"
read -r secs kib user sys <"$work/tess.time"
row "tesseract 5 ($cores procs, OMP_THREAD_LIMIT=1)" "$secs" - "$work/tess" "$(echo "$user + $sys" | bc -l)"
read -r secs kib user sys <"$work/peer.time"
row "faster-paddle 1.0.4 tiny" "$secs" "$kib" "$work/peer" "$(echo "$user + $sys" | bc -l)"
# name|flags: the defaults first; then the Latin head named (the samples are
# English and Polish), the whole head named (what every page was read with
# before languages chose), and the accurate profile.
# Every page is read from its pixels (--text-layer ocr) but in the last
# row, which runs with every default: text layer auto takes a born-digital
# page's own text once a sample of its lines read from the pixels agrees.
runs=(
  "default, pixels|--text-layer ocr"
  "language en,pl|--text-layer ocr --language en,pl"
  "language zh|--text-layer ocr --language zh"
  "accurate|--text-layer ocr --profile accurate"
  "default, text layer auto|"
)
names=()
for spec in "${runs[@]}"; do
  name=${spec%%|*}; read -ra flags <<<"${spec#*|}"
  key=ocr-${#names[@]}; names+=("$key|$name")
  timed "$key" target/release/pagefleet ocr -q "${flags[@]}" --out "$work/$key" "${pdfs[@]}"
  read -r secs kib user sys <"$work/$key.time"
  row "pagefleet ocr, $name" "$secs" "$kib" "$work/$key" "$(echo "$user + $sys" | bc -l)"
done
# The whole pipeline in one process with its defaults: nats-server,
# rasterizer, workers and aggregator, every page image through the object
# store.
timed run target/release/pagefleet run -q --text-layer ocr --data "$work/data" --out "$work/run" "${pdfs[@]}"
read -r secs kib user sys <"$work/run.time"
row "pagefleet run, default, pixels" "$secs" "$kib" "$work/run" "$(echo "$user + $sys" | bc -l)"

# Where pagefleet's time goes: the step timings of result.json, summed
# over the pages (slot time).
echo
echo "| pagefleet ocr | orient | detect | crop | recognize (auto's sample of it) | layer check | layout | total ms/page |"
echo "|---|---|---|---|---|---|---|---|"
for entry in "${names[@]}"; do
  python3 - "${entry#*|}" "$work/${entry%%|*}" <<'PY'
import glob, json, sys
steps = ["orient_ms", "detect_ms", "crop_ms", "recognize_ms", "sample_ms", "check_ms", "layout_ms", "total_ms"]
sums, pages = dict.fromkeys(steps, 0.0), 0
for f in glob.glob(f"{sys.argv[2]}/*/result.json"):
    for page in json.load(open(f))["pages"]:
        pages += 1
        for s in steps:
            sums[s] += page["timings"].get(s, 0.0)
per = {s: sums[s] / max(pages, 1) for s in steps}
cells = [f"{per['orient_ms']:.0f}", f"{per['detect_ms']:.0f}", f"{per['crop_ms']:.0f}",
         f"{per['recognize_ms']:.0f} ({per['sample_ms']:.0f})", f"{per['check_ms']:.0f}",
         f"{per['layout_ms']:.0f}", f"{per['total_ms']:.0f}"]
print(f"| {sys.argv[1]} | " + " | ".join(cells) + " |")
PY
done
