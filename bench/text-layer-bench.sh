#!/usr/bin/env bash
# Born-digital documents with --text-layer use: a PAGES-page PDF whose every
# page carries text (the layout development set's PDFs joined and repeated),
# taken through `pagefleet ocr` and through the pipeline (`pagefleet run`,
# its own nats-server). Prints each command's wall time and peak memory, and
# the pages and words the result holds. Then the searchable PDF's extra
# memory: `pagefleet ocr` on a SCAN-page scan with --format json and with
# --format pdf.
#
#   bench/text-layer-bench.sh [PAGES] [SCAN]   (default: 500, 10)
set -euo pipefail
cd "$(dirname "$0")/.."
pages=${1:-500}
scan=${2:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
scripts/bootstrap >/dev/null
cargo build --release -q
bin=target/release/pagefleet
pypdf=.pagefleet/python/pypdf-5.9.0-py3-none-any.whl

# PAGES pages, every one with text, and a SCAN-page PDF of one page image.
"$bin" ocr ../shared/samples/ltnews34-p2.png --format pdf --out "$work/one" -q 2>/dev/null
PYTHONPATH=$pypdf python3 - "$work" "$pages" "$scan" <<'PY'
import glob, sys, pypdf
work, pages, scan = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
readers = [pypdf.PdfReader(f) for f in sorted(glob.glob("tests/data/layout/*.pdf"))]
out, n = pypdf.PdfWriter(), 0
while n < pages:
    for r in readers:
        for p in r.pages:
            if n < pages:
                out.add_page(p)
                n += 1
out.write(f"{work}/manual.pdf")
page = pypdf.PdfReader(f"{work}/one/ltnews34-p2/combined.pdf").pages[0]
out = pypdf.PdfWriter()
for _ in range(scan):
    out.add_page(page)
out.write(f"{work}/scan.pdf")
PY

summary() {
  python3 -c "import json,sys; m=json.load(open(sys.argv[1]))['metrics']; print(f\"  {m['pages_processed']} of {m['total_pages']} pages, {m['total_words']} words, job {m['total_duration_ms']} ms\")" "$1"
}
echo "== $pages born-digital pages, --text-layer use"
/usr/bin/time -f "pagefleet ocr: %e s wall, %M KiB peak" \
  "$bin" ocr "$work/manual.pdf" --text-layer use --out "$work/ocr" -q 2>&1 | tail -1
summary "$work/ocr/manual/result.json"
/usr/bin/time -f "pagefleet run: %e s wall, %M KiB peak" \
  "$bin" run "$work/manual.pdf" --text-layer use --out "$work/run" --data "$work/data" -q 2>&1 | tail -1
summary "$work/run/manual/result.json"

echo "== $scan scanned pages, the searchable PDF's memory"
for format in json pdf; do
  /usr/bin/time -f "--format $format: %e s wall, %M KiB peak" \
    "$bin" ocr "$work/scan.pdf" --format "$format" --out "$work/scan-$format" -q 2>&1 | tail -1
done
