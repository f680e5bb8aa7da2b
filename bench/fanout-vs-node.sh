#!/usr/bin/env bash
# Benchmark 1 of issue 6: sustainable fan-out of our cluster against the original Node design,
# back to back, with the same nginx config (rendered from deploy/nginx), the same Redis, the
# same load generator and the same `ramp` scenario (message rate doubling every step until
# fan-out p99 > 50 ms or anything is lost). Prints the highest step each held, in deliveries
# per second, their ratio, and writes a `loadgen compare` report of the two runs.
#
#   bench/fanout-vs-node.sh [OUT_DIR] [extra loadgen run flags...]
#
# Needs: redis-server, nginx, node (with `npm ci --prefix peers/node-seed`), a release build
# of loadgen (built here).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/fanout-vs-node-$(date +%Y%m%d-%H%M%S)}
shift || true
mkdir -p "$out"
out=$(cd "$out" && pwd)

cargo build --release -q -p loadgen
loadgen=$PWD/target/release/loadgen
[ -d peers/node-seed/node_modules ] || npm ci --prefix peers/node-seed --no-audit --no-fund --loglevel=error

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
  || shuf -i 20000-29999 -n 1; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

redis_port=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
  --client-output-buffer-limit pubsub 256mb 64mb 60 > "$out/redis.log" 2>&1 &
pids+=($!)
redis="redis://127.0.0.1:$redis_port"
until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.1; done

# As root, nginx workers would run as `nobody`, which cannot enter the run folder.
user_args=()
[ "$(id -u)" = 0 ] && user_args=(--user "root root")

# nginx in front of two workers on base..base+1, from the project's one template.
start_nginx() { # name base listen_port
  local dir="$out/$1-nginx"
  mkdir -p "$dir/nginx-temp"
  "$loadgen" chat-server nginx-config --listen "127.0.0.1:$3" \
    --upstream "127.0.0.1:$2,127.0.0.1:$(($2 + 1))" --real-ip-from 127.0.0.0/8 \
    --worker-processes 2 --prefix "$dir" "${user_args[@]}" > "$dir/nginx.conf"
  nginx -p "$dir" -c "$dir/nginx.conf" &
  pids+=($!)
}
wait_http() { until curl -sf "http://127.0.0.1:$1/$2" >/dev/null 2>&1; do sleep 0.2; done; }

run_ramp() { # name url [extra loadgen flags]
  local name=$1 url=$2
  shift 2
  echo "== $name: ramp scenario against $url"
  "$loadgen" run scenarios/ramp.toml --target "$url" --out "$out/$name" -q "$@" | tee "$out/$name.txt" || true
}

# 1. Ours: 2 workers on the shared Redis.
ours_base=$(shuf -i 20000-24999 -n 1)
"$loadgen" chat-server cluster --workers 2 --base-port "$ours_base" --redis "$redis" > "$out/ours-cluster.log" 2>&1 &
pids+=($!)
ours_port=$(free_port)
start_nginx ours "$ours_base" "$ours_port"
wait_http "$ours_base" healthz; wait_http "$((ours_base + 1))" healthz
run_ramp ours "http://127.0.0.1:$ours_port" "$@"
cleanup; pids=()

# Redis again for the Node run (the cleanup stopped it).
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
  --client-output-buffer-limit pubsub 256mb 64mb 60 > "$out/redis-node.log" 2>&1 &
pids+=($!)
until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.1; done

# 2. The original design on socket.io 4: 2 workers on the same Redis, same nginx config.
node_base=$(shuf -i 25000-29999 -n 1)
node peers/node-seed/cluster.js --workers 2 --base-port "$node_base" --redis "$redis" > "$out/node-cluster.log" 2>&1 &
pids+=($!)
node_port=$(free_port)
start_nginx node "$node_base" "$node_port"
until grep -q ready "$out/node-cluster.log"; do sleep 0.2; done
run_ramp node "http://127.0.0.1:$node_port" "$@"

held() { python3 -c "
import json,sys
r=json.load(open(sys.argv[1])); i=r.get('highest_step_held')
print(0 if i is None else r['steps'][i]['deliveries_per_s'])" "$1"; }
ours=$(held "$out/ours/results.json")
nodes=$(held "$out/node/results.json")
echo
echo "highest step held, deliveries per second: ours $ours, node $nodes"
python3 -c "import sys; o,n=float(sys.argv[1]),float(sys.argv[2]); print('ratio ours/node: ' + ('%.1fx' % (o/n) if n > 0 else 'node held no step'))" "$ours" "$nodes"
"$loadgen" compare "$out/node/results.json" "$out/ours/results.json" -o "$out/compare.html" >/dev/null || true
echo "compare report: $out/compare.html"
