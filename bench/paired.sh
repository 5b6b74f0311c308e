#!/usr/bin/env bash
# Times two commands side by side: A B A B ..., N pairs after one warm-up
# pair, each run through GNU time. Prints each command's median wall time,
# CPU time (user + system) and peak RSS, and the median of the pair-by-pair
# ratios A/B, which stays meaningful when the machine's speed drifts.
#
#   bench/paired.sh N 'COMMAND A' 'COMMAND B'
#
# Each command is run by sh -c with its output thrown away.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 N 'COMMAND A' 'COMMAND B'" >&2; exit 2; }
n=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for i in $(seq 0 "$n"); do
  for side in a b; do
    if [ "$side" = a ]; then cmd=$2; else cmd=$3; fi
    /usr/bin/time -f '%e %U %S %M' -o "$work/$side.$i" sh -c "$cmd" >/dev/null 2>"$work/$side.err" ||
      { echo "command $side failed:" >&2; tail -5 "$work/$side.err" >&2; exit 1; }
  done
done
python3 - "$work" "$n" <<'PY'
import statistics, sys
work, n = sys.argv[1], int(sys.argv[2])
def runs(side):  # run 0 is the warm-up
    out = []
    for i in range(1, n + 1):
        wall, user, sys_, kib = open(f"{work}/{side}.{i}").read().split()[-4:]
        out.append((float(wall), float(user) + float(sys_), int(kib) / 1024))
    return out
a, b = runs("a"), runs("b")
med = statistics.median
print("| | wall s | CPU s | peak MiB |")
print("|---|---|---|---|")
for name, r in (("A", a), ("B", b)):
    print(f"| {name} | {med(x[0] for x in r):.2f} | {med(x[1] for x in r):.2f} | {med(x[2] for x in r):.0f} |")
print(f"| A/B | {med(x[0] / y[0] for x, y in zip(a, b)):.3f} | "
      f"{med(x[1] / y[1] for x, y in zip(a, b)):.3f} | |")
PY
