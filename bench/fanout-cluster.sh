#!/usr/bin/env bash
# Issue 14: sustainable fan-out on the Redis Cluster bus beside the single-Redis one. The same
# `ramp` scenario (2,000 members in 100 rooms, message rate x1.25 every 10 s until fan-out p99
# >= 50 ms or anything is lost), the same release loadgen starting its own local stack (2
# workers, 2 nginx workers) on the same machine, twice per run: once with one Redis, once with a
# Redis Cluster of 3 masters and 3 replicas (`target.local.redis_cluster = 3`: sharded pub/sub,
# each room on the master that owns its slot). A run is one such pair; the order alternates
# (single first in odd runs) so drift on the machine does not always favour the same side.
#
# Prints, per run, each side's highest step held (deliveries/s), their ratio (cluster / single),
# and the CPU seconds of every component (loadgen, workers with their master, nginx, Redis: the
# cluster's 6 nodes together); then the medians over the runs. Exit 0 when both sides held at
# least the first step, 1 when not, 2 on a setup error.
#
#   bench/fanout-cluster.sh [--runs N] [--out DIR] [--quick] [-- extra loadgen run flags]
#
#   --runs N   pairs to run (default 3)
#   --quick    a check of the script, not a measurement: 1 run of 200 members in 10 rooms,
#              4 steps of 5 s (about 2 minutes)
#
# Writes runs/fanout-cluster-<time>/run-I/{single,cluster}/ (results.json, report.html, the
# stack's logs) and compare-I.html. A full run takes about 3.5 min per side: 20-25 min for 3.
#
# Needs: cargo, redis-server, redis-cli, nginx, python3.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

common_flags_only "$@"

need redis-server "apt-get install -y redis-server"
need redis-cli "apt-get install -y redis-tools"
need nginx "apt-get install -y nginx"
need python3 "apt-get install -y python3"
build_loadgen
out_dir fanout-cluster "$out_arg"

single=$out/ramp-single.toml
cluster=$out/ramp-cluster.toml
if [ "$quick" = 1 ]; then
  runs=1
  quick_ramp "$single"
  extra=(--members 200 --rooms 10 "${extra[@]}")
else
  cp scenarios/ramp.toml "$single"
fi
sed -e 's/^local = { workers = 2, nginx_workers = 2 }/local = { workers = 2, nginx_workers = 2, redis_cluster = 3 }/' \
    -e 's/^name = "ramp"/name = "ramp-cluster"/' "$single" > "$cluster"
grep -q 'redis_cluster = 3' "$cluster" || { echo "could not make the cluster scenario from scenarios/ramp.toml" >&2; exit 2; }

run_side() { # side dir
  local side=$1 dir=$2 scenario=$single
  [ "$side" = cluster ] && scenario=$cluster
  mkdir -p "$dir"
  echo "== run $i, $side: $(basename "$scenario")"
  in_background "$loadgen" run "$scenario" --out "$dir" -q "${extra[@]}" > "$dir/loadgen.txt" 2>&1 || true
  [ -f "$dir/results.json" ] || { echo "no results in $dir; see $dir/loadgen.txt" >&2; exit 2; }
}

figs=(-m held_per_s -m cpu_s:loadgen -m "cpu_s:chat worker*" -m cpu_s:nginx -m cpu_s:redis)
ratios=()
for i in $(seq 1 "$runs"); do
  if [ $((i % 2)) = 1 ]; then order=(single cluster); else order=(cluster single); fi
  for side in "${order[@]}"; do run_side "$side" "$out/run-$i/$side"; done
  read -r s_held s_lg s_w s_ng s_rd < <("$loadgen" figures --median "${figs[@]}" "$out/run-$i/single/results.json")
  read -r c_held c_lg c_w c_ng c_rd < <("$loadgen" figures --median "${figs[@]}" "$out/run-$i/cluster/results.json")
  ratios+=("$(ratio "$c_held" "$s_held")")
  echo "run $i: highest step held: single Redis $s_held deliveries/s, Redis Cluster $c_held; ratio ${ratios[-1]}"
  echo "       CPU s  single:  loadgen $s_lg, workers $s_w, nginx $s_ng, redis $s_rd"
  echo "              cluster: loadgen $c_lg, workers $c_w, nginx $c_ng, redis (6 nodes) $c_rd"
  "$loadgen" compare "$out/run-$i/single/results.json" "$out/run-$i/cluster/results.json" -o "$out/compare-$i.html" >/dev/null || true
done

echo
echo "per run (single, then cluster):"
"$loadgen" figures "${figs[@]}" "$out"/run-*/single/results.json
"$loadgen" figures "${figs[@]}" "$out"/run-*/cluster/results.json
read -r single_med _ < <("$loadgen" figures --median -m held_per_s "$out"/run-*/single/results.json)
read -r cluster_med _ < <("$loadgen" figures --median -m held_per_s "$out"/run-*/cluster/results.json)

info "single Redis: step held, median (deliv./s)" "$single_med"
info "ratio cluster/single, median of runs" "$(median "${ratios[@]}")"
verdict "Redis Cluster: step held, median (deliv./s)" "$cluster_med" ">" 0
[ "$quick" = 1 ] && echo "(--quick: a check of the script, not a measurement)"
echo "runs, reports and compare-*.html: $out"
print_verdicts "fan-out on the Redis Cluster bus beside one Redis, median of $runs runs ($(basename "$single"))"
