#!/usr/bin/env bash
# A long job through pagefleet: for each page count given (default 100
# 1000), a PDF of that many text pages read with `text_layer=use` (so the
# run takes seconds, not hours), once through `pagefleet serve` and once
# through separate stage processes (nats-server, ingest, rasterizer,
# aggregator). For each: the job's wall time, the peak resident memory of
# serve (or of the separate aggregator), the bytes written to the jobs
# bucket per page (pagefleet_state_bytes_written_total over the pages), the
# size of result.json, and the latency of GET /v1/jobs/{id} under 10
# concurrent pollers (200 calls).
#
#   bench/long-job-bench.sh [PAGES...]
#
# Needs a release build (target/release/pagefleet), the bootstrapped
# runtime (.pagefleet), curl and python3.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$root/target/release/pagefleet
work=$(mktemp -d)
pids=()
stop_all() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(100 1000)
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

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

# Sets api, data, watched (the process whose memory is reported) and
# metrics (where the jobs bucket's bytes are counted).
start_serve() {
  data=$work/data-$1
  rm -f "$work/serve.out"
  "$bin" serve --data "$data" --http-addr 127.0.0.1:0 --max-job-pages 100000 --max-pages 100000 \
    --max-upload-bytes 1000000000 >"$work/serve.out" 2>"$work/serve.err" &
  watched=$!; pids+=("$watched")
  for _ in $(seq 200); do grep -q "NATS:" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
  api=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/serve.out" | head -1)
  metrics=$api/metrics
}

start_stages() {
  data=$work/stages-$1
  mkdir -p "$data/objects"
  local nats_port http_port health_port
  nats_port=$(free_port); http_port=$(free_port); health_port=$(free_port)
  "$root/.pagefleet/bin/nats-server" --jetstream --addr 127.0.0.1 --port "$nats_port" \
    --store_dir "$data/nats" 2>"$work/nats.err" &
  pids+=($!)
  local nats=nats://127.0.0.1:$nats_port
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break; sleep 0.1; done
  # For these three only: serve, started next, keeps its store in --data.
  local -x PAGEFLEET_STORE=$data/objects RUST_LOG=warn
  "$bin" aggregator --nats "$nats" --health-addr "127.0.0.1:$health_port" 2>"$work/agg.err" &
  watched=$!; pids+=("$watched")
  "$bin" rasterizer --nats "$nats" --max-pages 100000 2>"$work/ras.err" &
  pids+=($!)
  "$bin" ingest --nats "$nats" --http-addr "127.0.0.1:$http_port" --max-job-pages 100000 \
    --max-upload-bytes 1000000000 2>"$work/ingest.err" &
  pids+=($!)
  api=http://127.0.0.1:$http_port
  metrics=http://127.0.0.1:$health_port/metrics
  for _ in $(seq 300); do curl -sf "$api/readyz" >/dev/null 2>&1 && curl -sf "$metrics" >/dev/null 2>&1 && break; sleep 0.1; done
}

printf 'pages\tmode\tjob s\tpeak RSS MB\tjobs-bucket bytes/page\tresult.json MB\tstatus p50 ms\tstatus p95 ms\tstatus max ms\tconflicts\n'
for pages in "${counts[@]}"; do
  make_pdf "$pages" "$work/doc-$pages.pdf"
  for mode in serve stages; do
  "start_$mode" "$pages"
  start=$(date +%s.%N)
  job=$(curl -sf -F "file=@$work/doc-$pages.pdf" -F text_layer=use "$api/v1/jobs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')
  while :; do
    status=$(curl -sf "$api/v1/jobs/$job" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    case $status in queued|running|waiting) sleep 0.5 ;; *) break ;; esac
  done
  took=$(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')")
  if [ "$status" != success ]; then
    printf '%s\t%s\tjob %s: ' "$pages" "$mode" "$status" >&2
    curl -sf "$api/v1/jobs/$job" >&2 || true
    echo >&2
    tail -5 "$work"/*.err >&2 || true
  fi
  result_mb=$(python3 -c "import os; p = '$data/objects/jobs/$job/result.json'; print(f'{os.path.getsize(p) / 1e6:.1f}' if os.path.exists(p) else '-')")
  kv=$(curl -sf "$metrics" | awk -v n="$pages" '/^pagefleet_state_bytes_written_total/ {s += $2} END {printf "%.0f", s / n}')
  [ -n "${KEEP_METRICS:-}" ] && curl -sf "$metrics" >"$KEEP_METRICS-$pages-$mode"
  conflicts=$(curl -sf "$metrics" | awk '/^pagefleet_state_conflicts_total/ {s += $2} END {printf "%.0f", s}')
  # 10 pollers, 20 calls each.
  lat_pids=()
  for p in $(seq 10); do
    ( for _ in $(seq 20); do curl -s -o /dev/null -w '%{time_total}\n' "$api/v1/jobs/$job"; done ) >"$work/lat-$p" &
    lat_pids+=($!)
  done
  wait "${lat_pids[@]}"
  lat=$(cat "$work"/lat-* | python3 -c '
import sys; v = sorted(float(x) * 1000 for x in sys.stdin if x.strip())
print(f"{v[len(v)//2]:.1f}\t{v[int(len(v)*0.95)]:.1f}\t{v[-1]:.1f}")')
  peak=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$watched/status")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t(%s)\n' "$pages" "$mode" "$took" "$peak" "$kv" "$result_mb" "$lat" "$conflicts" "$status"
  stop_all
  rm -f "$work"/lat-*
  done
done
