#!/usr/bin/env bash
# Fair sharing between jobs: one worker slot, one 100-page job, and a 1-page
# job submitted every 5 s while it is read. Reports the small jobs' latency
# (submission to completion: median and max) and the large job's time
# against the same job read alone, in one run.
#
#   bench/fairness-bench.sh [PAGES] [INTERVAL_S]   (default: 100, 5)
#
# Runs `pagefleet serve` (its own nats-server, every stage, the HTTP API) on
# a free loopback port with --slots 1. The large document is the layout
# development set's PDFs joined and repeated to PAGES pages; the small one
# is examples/welcome.pdf.
set -euo pipefail
cd "$(dirname "$0")/.."
pages=${1:-100}
interval=${2:-5}
work=$(mktemp -d)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
scripts/bootstrap >/dev/null
cargo build --release -q

# The large document: every layout PDF, repeated until PAGES pages.
files=()
while [ "${#files[@]}" -lt "$pages" ]; do files+=(tests/data/layout/*.pdf); done
qpdf --empty --pages "${files[@]}" -- "$work/joined.pdf"
qpdf --empty --pages "$work/joined.pdf" "1-$pages" -- "$work/large.pdf"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
RUST_LOG=warn target/release/pagefleet serve --slots 1 --data "$work/data" \
  --http-addr "127.0.0.1:$port" >/dev/null 2>"$work/serve.log" &
server=$!
until curl -fs "$base/healthz" >/dev/null 2>&1; do sleep 0.2; done
# Ready once the worker has warmed up and sent a heartbeat.
until [ "$(curl -fs "$base/health" | jq .healthy_workers)" = 1 ]; do sleep 0.5; done

submit() { curl -fsS -F file=@"$1" "$base/v1/jobs" | jq -r .job_id; }
job() { curl -fsS "$base/v1/jobs/$1"; }
finished() { [ "$(job "$1" | jq -r '.finished_at_ms != null')" = true ]; }
# Seconds from submission to completion.
latency() { job "$1" | jq '(.finished_at_ms - .submitted_at_ms) / 1000'; }

# The large job alone.
alone=$(submit "$work/large.pdf")
until finished "$alone"; do sleep 1; done
alone_s=$(latency "$alone")

# The large job again, with a small job every INTERVAL_S seconds while it runs.
large=$(submit "$work/large.pdf")
small=()
while ! finished "$large"; do
  sleep "$interval"
  small+=("$(submit examples/welcome.pdf)")
done
for id in "${small[@]}"; do until finished "$id"; do sleep 0.5; done; done
large_s=$(latency "$large")
lat=$(for id in "${small[@]}"; do latency "$id"; done | sort -n)
n=$(echo "$lat" | wc -l)
median=$(echo "$lat" | sed -n "$(( (n + 1) / 2 ))p")
max=$(echo "$lat" | tail -1)

echo "| large job alone s | large job with small jobs s | its throughput | small jobs | small latency median s | max s |"
echo "|---|---|---|---|---|---|"
printf '| %.1f | %.1f | %.0f%% | %d | %.1f | %.1f |\n' "$alone_s" "$large_s" \
  "$(echo "100 * $alone_s / $large_s" | bc -l)" "$n" "$median" "$max"
