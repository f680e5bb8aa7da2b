#!/usr/bin/env bash
# Issue 15, target 1: what a delivery costs the chat workers, ours against the Node design,
# beside what the machine allows. Each side gets 2 workers under their cluster master, a fresh
# Redis and nginx (bench/sides.sh); the same release loadgen runs
# scenarios/generator-efficiency.toml for 40 s against each, back to back (1,000 members in 10
# rooms of 100, 0.2 messages/s each: 20,000 deliveries/s), alternating which side goes first.
#
# The figure: CPU seconds (user + system, from /proc) of the workers and their master
# (`--sample workers=PID`, descendants included) over the whole run, divided by the chat
# deliveries made (`loadgen figures -m us_per_delivery:workers`). Also printed per side: the
# workers' context switches per delivery (/proc/PID/status, from ready to the run's end), the
# fan-out p99 and what was lost. The floor is bench/loopback-floor.c, built and run here: one
# process writing 100 bytes to each of 1,000 loopback TCP sockets (1 and 4 frames per write)
# while another drains them; its writer's CPU per write is what a delivery cannot go below.
#
# Verdict: median of ours <= 3.9 µs per delivery, the median ratio node/ours >= 5, and nothing
# lost. Exit 0 when all hold, 1 when not, 2 on a setup error.
#
#   bench/worker-efficiency.sh [--runs N] [--out DIR] [--quick] [-- extra loadgen run flags]
#
#   --runs N   pairs to run (default 3)
#   --quick    a check of the script, not a measurement: 1 pair of 200 members for 10 s
#
# Our workers read CHAT_* settings from the environment: `CHAT_RUNTIME=current-thread
# bench/worker-efficiency.sh` measures them on a current-thread runtime.
# Writes runs/worker-efficiency-<time>/run-I/{ours,node}/ (results.json, report.html, logs).
# About 1.5 minutes per side: 9 minutes for 3 runs.
#
# Needs: cargo, cc, redis-server, redis-cli, nginx, node 20 with npm, curl, python3.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/sides.sh"

common_flags_only "$@"

need cc "apt-get install -y gcc"
prepare_sides
out_dir worker-efficiency "$out_arg"

if [ "$quick" = 1 ]; then
  runs=1
  extra=(--members 200 --rooms 2 --duration 10s "${extra[@]}")
else
  extra=(--duration 40s "${extra[@]}")
fi

cc -O2 -o "$out/floor" bench/loopback-floor.c
floor1=$("$out/floor" 1000 200 1 | sed -n 's/.*writer \([0-9.]*\) us.*/\1/p')
floor4=$("$out/floor" 1000 200 4 | sed -n 's/.*writer \([0-9.]*\) us.*/\1/p')
echo "floor: writer $floor1 µs per 100-byte write, $floor4 µs per frame with 4 frames per write"

run_side() { # side dir
  local side=$1 dir=$2 before after delivered
  start_side "$side" "$dir"
  echo "== run $i, $side against http://127.0.0.1:$nginx_port"
  before=$(context_switches "$cluster_pid")
  in_background "$loadgen" run scenarios/generator-efficiency.toml --target "http://127.0.0.1:$nginx_port" \
    --out "$dir" -q --sample "workers=$cluster_pid" --sample "nginx=$nginx_pid" --sample "redis=$redis_pid" \
    "${extra[@]}" > "$dir/loadgen.txt" 2>&1 || true
  after=$(context_switches "$cluster_pid")
  stop_started
  [ -f "$dir/results.json" ] || { echo "no results in $dir; see $dir/loadgen.txt" >&2; exit 2; }
  read -r delivered _ < <("$loadgen" figures --median -m delivered "$dir/results.json")
  awk -v a="$after" -v b="$before" -v d="$delivered" 'BEGIN { printf "%.3f\n", (d > 0 ? (a - b) / d : 0) }' \
    > "$dir/switches_per_delivery"
}

figs=(-m us_per_delivery:workers -m cpu_s:workers -m delivered -m fanout_p99_ms -m lost)
ratios=() ours_switches=() node_switches=()
for i in $(seq 1 "$runs"); do
  if [ $((i % 2)) = 1 ]; then order=(ours node); else order=(node ours); fi
  for side in "${order[@]}"; do run_side "$side" "$out/run-$i/$side"; done
  read -r o_us o_cpu o_del o_p99 o_lost < <("$loadgen" figures --median "${figs[@]}" "$out/run-$i/ours/results.json")
  read -r n_us n_cpu n_del n_p99 n_lost < <("$loadgen" figures --median "${figs[@]}" "$out/run-$i/node/results.json")
  o_sw=$(cat "$out/run-$i/ours/switches_per_delivery") n_sw=$(cat "$out/run-$i/node/switches_per_delivery")
  ours_switches+=("$o_sw") node_switches+=("$n_sw")
  ratios+=("$(ratio "$n_us" "$o_us")")
  echo "run $i: ours $o_us µs per delivery ($o_cpu CPU s / $o_del deliveries, $o_sw switches each, p99 $o_p99 ms, lost $o_lost)"
  echo "       node $n_us µs per delivery ($n_cpu CPU s / $n_del deliveries, $n_sw switches each, p99 $n_p99 ms, lost $n_lost); node/ours ${ratios[-1]}"
done

echo
echo "per run (ours, then node; medians last):"
"$loadgen" figures "${figs[@]}" "$out"/run-*/ours/results.json
"$loadgen" figures "${figs[@]}" "$out"/run-*/node/results.json
read -r ours_med _ _ ours_p99 _ < <("$loadgen" figures --median "${figs[@]}" "$out"/run-*/ours/results.json)
read -r node_med _ _ node_p99 _ < <("$loadgen" figures --median "${figs[@]}" "$out"/run-*/node/results.json)
lost_total=$("$loadgen" figures -m lost "$out"/run-*/*/results.json | awk 'NR > 1 && $1 != "median" { s += $NF } END { print s + 0 }')

info "floor: writer µs per write (1 frame)" "$floor1" " µs"
info "floor: writer µs per frame (4 per write)" "$floor4" " µs"
info "node: worker CPU per delivery, median" "$node_med" " µs"
info "node: context switches per delivery, median" "$(median "${node_switches[@]}")"
info "node: fan-out p99, median" "$node_p99" " ms"
info "ours: context switches per delivery, median" "$(median "${ours_switches[@]}")"
info "ours: fan-out p99, median" "$ours_p99" " ms"
verdict "ours: worker CPU per delivery, median" "$ours_med" "<=" 3.9 " µs"
verdict "node/ours, median of per-run ratios" "$(median "${ratios[@]}")" ">=" 5
verdict "deliveries lost, all runs" "$lost_total" "<=" 0
[ "$quick" = 1 ] && echo "(--quick: a check of the script, not a measurement)"
echo "runs and reports: $out"
print_verdicts "issue 15, target 1: worker efficiency, $runs run(s)"
