#!/usr/bin/env bash
# A long job through `pagefleet serve`: for each page count given (default
# 100 1000), a PDF of that many text pages read with `text_layer=use` (so the
# run takes seconds, not hours), then serve's peak resident memory, the
# job's wall time, the size of its result.json, and the latency of
# GET /v1/jobs/{id} under 10 concurrent pollers (200 calls).
#
#   bench/long-job-bench.sh [PAGES...]
#
# Needs a release build (target/release/pagefleet), curl and python3.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$root/target/release/pagefleet
work=$(mktemp -d)
trap 'kill $serve_pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(100 1000)

make_pdf() { # pages file: one content stream shared by every page
  python3 - "$1" "$2" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
lines = ["Long job benchmark page", "pagefleet reads every page of this document from its text layer."] * 12
ops = ["BT", "/F1 11 Tf", "14 TL", "72 700 Td"] + [f"({l}) Tj T*" for l in lines] + ["ET"]
content = "\n".join(ops).encode()
kids = " ".join(f"{5 + i} 0 R" for i in range(n))
objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
           b"<< /Type /Pages /Kids [" + kids.encode() + b"] /Count %d >>" % n,
           b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
           b"<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman >>"]
objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R /Resources << /Font << /F1 4 0 R >> >> >>"] * n
out = bytearray(b"%PDF-1.7\n"); offsets = []
for i, body in enumerate(objects, 1):
    offsets.append(len(out)); out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
xref = len(out)
out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
for off in offsets: out += b"%010d 00000 n \n" % off
out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
open(path, "wb").write(out)
PY
}

printf 'pages\tjob s\tserve peak RSS MB\tresult.json MB\tstatus p50 ms\tstatus p95 ms\tstatus max ms\n'
for pages in "${counts[@]}"; do
  make_pdf "$pages" "$work/doc-$pages.pdf"
  data=$work/data-$pages
  "$bin" serve --data "$data" --http-addr 127.0.0.1:0 --max-job-pages 100000 --max-pages 100000 \
    --max-upload-bytes 1000000000 >"$work/serve.out" 2>"$work/serve.err" &
  serve_pid=$!
  for _ in $(seq 200); do grep -q "NATS:" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
  api=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/serve.out" | head -1)
  start=$(date +%s.%N)
  job=$(curl -sf -F "file=@$work/doc-$pages.pdf" -F text_layer=use "$api/v1/jobs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')
  while :; do
    status=$(curl -sf "$api/v1/jobs/$job" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    case $status in queued|running|waiting) sleep 0.5 ;; *) break ;; esac
  done
  took=$(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')")
  result_mb=$(python3 -c "import os; print(f'{os.path.getsize(\"$data/objects/jobs/$job/result.json\") / 1e6:.1f}')")
  # 10 pollers, 20 calls each.
  for p in $(seq 10); do
    ( for _ in $(seq 20); do curl -s -o /dev/null -w '%{time_total}\n' "$api/v1/jobs/$job"; done ) >"$work/lat-$p" &
  done
  wait $(jobs -p | grep -v "^$serve_pid$") 2>/dev/null || true
  lat=$(cat "$work"/lat-* | python3 -c '
import sys; v = sorted(float(x) * 1000 for x in sys.stdin if x.strip())
print(f"{v[len(v)//2]:.1f}\t{v[int(len(v)*0.95)]:.1f}\t{v[-1]:.1f}")')
  peak=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$serve_pid/status")
  printf '%s\t%s\t%s\t%s\t%s\t(%s)\n' "$pages" "$took" "$peak" "$result_mb" "$lat" "$status"
  kill -TERM "$serve_pid"; wait "$serve_pid" 2>/dev/null || true
  rm -f "$work"/lat-*
done
