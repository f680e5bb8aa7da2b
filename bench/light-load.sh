#!/usr/bin/env bash
# Benchmark 3 of issue 6: fan-out latency at light load. Our cluster (2 chat workers behind
# Redis, 2 nginx workers: the local stack loadgen starts) at a QUARTER of the sustainable
# rate, end to end: from a message's intended send time, through nginx, a worker, Redis, the
# other worker and nginx again, to each member of the room. scenarios/light-load.toml: the
# `ramp` population (2,000 members in 100 rooms of 20) at one steady rate for 60 s.
#
# The sustainable rate, in deliveries per second, is taken from (first found):
#   --sustainable D      a number;
#   --from DIR           a bench/fanout-vs-node.sh output folder: `ours_held_median` of its
#                        summary.env (the median of our highest step held over its runs);
#   otherwise            the newest runs/fanout-vs-node-*/summary.env that is not a --quick one.
# The per-member rate is then D / 4 / (members x room size) messages per second (each message
# is delivered to its room's members, the sender included); the deliveries per second
# actually received are printed beside it.
#
# Verdict: the median over N runs of the run's fan-out p99 <= 5 ms. Each run's loss must also be
# 0 (printed; a loss fails the verdict too). Exit 0 when it holds, 1 when not, 2 on a setup
# error.
#
#   bench/light-load.sh [--sustainable D | --from DIR] [--runs N] [--out DIR] [--quick]
#                       [-- extra loadgen run flags]
#
#   --runs N   runs (default 3)
#   --quick    a check of the script, not a measurement: 2 runs of 200 members in 10 rooms for
#              10 s (about 1 minute); without --sustainable/--from it assumes 20,000/s
#
# Writes runs/light-load-<time>/run-I/ (results.json, report.html, the stack's logs). A full
# run takes about 1.7 minutes per run: 5 minutes for 3 runs.
#
# Needs: cargo, redis-server, nginx.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

runs=3 quick=0 out_arg= sustainable= from=
while [ $# -gt 0 ]; do
  case $1 in
    --sustainable) sustainable=$2; shift 2 ;;
    --from) from=$(abs "$2"); shift 2 ;;
    --) shift; break ;;
    *) common_flag "$@"; shift "$used" ;;
  esac
done
extra=("$@")
members=2000 rooms=100
if [ "$quick" = 1 ]; then
  runs=2 members=200 rooms=10
  extra=(--members "$members" --rooms "$rooms" --duration 10s "${extra[@]}")
  [ -n "$sustainable$from" ] || sustainable=20000
fi

need redis-server "apt-get install -y redis-server"
need nginx "apt-get install -y nginx"

source_of_rate=
if [ -z "$sustainable" ]; then
  if [ -z "$from" ]; then
    for f in $(ls -1d runs/fanout-vs-node-*/ 2>/dev/null | sort -r); do
      [ -f "$f/summary.env" ] && ! grep -q '^scenario=.*quick' "$f/summary.env" && { from=$f; break; }
    done
    [ -n "$from" ] || { echo "light-load.sh: no sustainable rate: pass --sustainable D or --from DIR, or run bench/fanout-vs-node.sh first" >&2; exit 2; }
  fi
  [ -f "$from/summary.env" ] || { echo "light-load.sh: $from/summary.env not found" >&2; exit 2; }
  sustainable=$(sed -n 's/^ours_held_median=//p' "$from/summary.env")
  source_of_rate="median of $from"
else
  source_of_rate="--sustainable"
fi
holds "$sustainable" ">" 0 || { echo "light-load.sh: sustainable rate '$sustainable' is not a positive number" >&2; exit 2; }

build_loadgen
out_dir light-load "$out_arg"
asked=$(awk -v d="$sustainable" 'BEGIN { printf "%.0f", d / 4 }')
rate=$(awk -v d="$asked" -v m="$members" -v r="$rooms" 'BEGIN { printf "%.6f", d / (m * m / r) }')
echo "sustainable $sustainable deliveries/s ($source_of_rate): a quarter is $asked/s," \
  "$rate messages/s per member ($members members in $rooms rooms)"

losses=()
for i in $(seq 1 "$runs"); do
  dir=$out/run-$i
  mkdir -p "$dir"
  echo "== run $i"
  in_background "$loadgen" run scenarios/light-load.toml --rate "$rate" --out "$dir" -q "${extra[@]}" \
    > "$dir.txt" 2>&1 || true
  [ -f "$dir/results.json" ] || { echo "no results in $dir; see $dir.txt" >&2; exit 2; }
  read -r p50 p99 lost per_s < <("$loadgen" figures --median -m fanout_p50_ms -m fanout_p99_ms -m lost -m deliveries_per_s "$dir/results.json")
  echo "   fan-out p50 $p50 ms, p99 $p99 ms, lost $lost; $per_s deliveries/s received while sending"
  losses+=("$lost")
done

echo
"$loadgen" figures -m deliveries_per_s -m fanout_p50_ms -m fanout_p99_ms -m fanout_max_ms -m lost -m cpu_s:loadgen -m cpu_s:server "$out"/run-*/results.json
info "deliveries/s asked (a quarter of $sustainable)" "$asked"
read -r med _ < <("$loadgen" figures --median -m fanout_p99_ms "$out"/run-*/results.json)
verdict "fan-out p99, median of runs" "$med" "<=" 5 " ms"
verdict "lost, highest of runs" "$(printf '%s\n' "${losses[@]}" | sort -g | tail -n 1)" "<=" 0
[ "$quick" = 1 ] && echo "(--quick: a check of the script, not a measurement)"
echo "runs and reports: $out"
print_verdicts "benchmark 3: light load, $runs run(s)"
