#!/usr/bin/env bash
# Benchmark 1 of issue 6: sustainable fan-out of our cluster against the original Node design.
# Both get 2 workers, a fresh Redis, the same nginx config (rendered from deploy/nginx, 2 nginx
# workers), the same release loadgen and the same `ramp` scenario (message rate x1.25 every
# 10 s until fan-out p99 >= 50 ms or anything is lost), back to back. A run is one such pair;
# the order alternates (ours first in odd runs, Node first in even ones) so drift on the
# machine does not always favour the same side.
#
# Prints, per run, each side's highest step held (deliveries/s), their ratio, and the CPU
# seconds of every component (loadgen, workers with their master, nginx, Redis: the script
# starts them, so it passes them to loadgen as `--sample NAME=PID`, descendants included);
# then the medians over the runs. Verdict: median of the per-run ratios >= 5.
# Exit 0 when it holds, 1 when not, 2 on a setup error.
#
#   bench/fanout-vs-node.sh [--runs N] [--out DIR] [--quick] [-- extra loadgen run flags]
#
#   --runs N   pairs to run (default 3)
#   --quick    a check of the script, not a measurement: 2 runs of 200 members in 10 rooms,
#              4 steps of 5 s (about 3 minutes; 6 on a busy machine)
#
# Writes runs/fanout-vs-node-<time>/run-I/{ours,node}/ (results.json, report.html, logs),
# compare-I.html, and summary.env (`ours_held_median=...`, read by bench/light-load.sh).
# A full run takes about 3.5 min per side: 20-25 min for 3 runs.
#
# Needs: cargo, redis-server, nginx, node 20 with npm (peers/node-seed's modules are installed
# here with `npm ci`), curl, python3.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/sides.sh"

common_flags_only "$@"

prepare_sides
out_dir fanout-vs-node "$out_arg"

scenario=scenarios/ramp.toml
if [ "$quick" = 1 ]; then
  runs=2
  scenario=$out/ramp-quick.toml
  quick_ramp "$scenario"
  extra=(--members 200 --rooms 10 "${extra[@]}")
fi

run_side() { # side dir
  local side=$1 dir=$2
  start_side "$side" "$dir"
  echo "== run $i, $side: $(basename "$scenario") against http://127.0.0.1:$nginx_port"
  in_background "$loadgen" run "$scenario" --target "http://127.0.0.1:$nginx_port" --out "$dir" -q \
    --sample "workers=$cluster_pid" --sample "nginx=$nginx_pid" --sample "redis=$redis_pid" \
    "${extra[@]}" > "$dir/loadgen.txt" 2>&1 || true
  stop_started
  [ -f "$dir/results.json" ] || { echo "no results in $dir; see $dir/loadgen.txt" >&2; exit 2; }
}

figs=(-m held_per_s -m cpu_s:loadgen -m cpu_s:workers -m cpu_s:nginx -m cpu_s:redis -m rss_kib:workers)
ratios=()
for i in $(seq 1 "$runs"); do
  if [ $((i % 2)) = 1 ]; then order=(ours node); else order=(node ours); fi
  for side in "${order[@]}"; do run_side "$side" "$out/run-$i/$side"; done
  read -r o_held o_lg o_w o_ng o_rd o_rss < <("$loadgen" figures --median "${figs[@]}" "$out/run-$i/ours/results.json")
  read -r n_held n_lg n_w n_ng n_rd n_rss < <("$loadgen" figures --median "${figs[@]}" "$out/run-$i/node/results.json")
  ratios+=("$(ratio "$o_held" "$n_held")")
  echo "run $i: highest step held: ours $o_held deliveries/s, node $n_held; ratio ${ratios[-1]}"
  echo "       CPU s  ours: loadgen $o_lg, workers $o_w, nginx $o_ng, redis $o_rd (workers peak RSS $o_rss KiB)"
  echo "              node: loadgen $n_lg, workers $n_w, nginx $n_ng, redis $n_rd (workers peak RSS $n_rss KiB)"
  "$loadgen" compare "$out/run-$i/node/results.json" "$out/run-$i/ours/results.json" -o "$out/compare-$i.html" >/dev/null || true
done

echo
echo "per run (ours, then node; medians last):"
"$loadgen" figures "${figs[@]}" "$out"/run-*/ours/results.json
"$loadgen" figures "${figs[@]}" "$out"/run-*/node/results.json
read -r ours_med _ < <("$loadgen" figures --median -m held_per_s "$out"/run-*/ours/results.json)
read -r node_med _ < <("$loadgen" figures --median -m held_per_s "$out"/run-*/node/results.json)
ratio_med=$(median "${ratios[@]}")
{
  echo "runs=$runs"
  echo "ours_held_median=$ours_med"
  echo "node_held_median=$node_med"
  echo "ratio_median=$ratio_med"
  echo "scenario=$scenario"
} > "$out/summary.env"

info "ours: highest step held, median (deliveries/s)" "$ours_med"
info "node: highest step held, median (deliveries/s)" "$node_med"
verdict "ratio ours/node, median of per-run ratios" "$ratio_med" ">=" 5
[ "$quick" = 1 ] && echo "(--quick: a check of the script, not a measurement)"
echo "runs, reports and compare-*.html: $out"
print_verdicts "benchmark 1: sustainable fan-out vs Node, median of $runs runs ($(basename "$scenario"))"
