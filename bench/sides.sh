# Shared by the benchmarks that put our cluster and the Node design side by side (sourced after
# lib.sh): each side is a fresh Redis, the cluster (2 workers under their
# master) and nginx from the project's one template (2 nginx workers) in front of it.
#
#   prepare_sides                checks the tools both sides need, builds $loadgen, and
#                                installs the Node design's modules when missing.
#   start_side ours|node DIR     starts them, logs in DIR, and sets $nginx_port, $cluster_pid,
#                                $nginx_pid, $redis_pid (all in $started: stop_started stops
#                                them). Our workers take their settings from CHAT_* variables.

prepare_sides() {
  need redis-server "apt-get install -y redis-server"
  need redis-cli "apt-get install -y redis-tools"
  need nginx "apt-get install -y nginx"
  need node "install node 20 (apt-get install -y nodejs npm, or nodesource)"
  need curl "apt-get install -y curl"
  need python3 "apt-get install -y python3"
  build_loadgen
  [ -d peers/node-seed/node_modules ] || npm ci --prefix peers/node-seed --no-audit --no-fund --loglevel=error
}

# As root, nginx workers would run as `nobody`, which cannot enter the run folder.
user_args=()
[ "$(id -u)" = 0 ] && user_args=(--user "root root")

start_redis() { # log
  redis_port=$(free_port)
  redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
    --client-output-buffer-limit pubsub 256mb 64mb 60 > "$1" 2>&1 &
  redis_pid=$!
  started+=("$redis_pid")
  until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.1; done
}

# nginx in front of two workers on base..base+1, from the project's one template.
start_nginx() { # dir base
  local dir=$1
  mkdir -p "$dir/nginx-temp"
  nginx_port=$(free_port)
  "$loadgen" chat-server nginx-config --listen "127.0.0.1:$nginx_port" \
    --upstream "127.0.0.1:$2,127.0.0.1:$(($2 + 1))" --real-ip-from 127.0.0.0/8 \
    --worker-processes 2 --prefix "$dir" "${user_args[@]}" > "$dir/nginx.conf"
  nginx -p "$dir" -c "$dir/nginx.conf" &
  nginx_pid=$!
  started+=("$nginx_pid")
}
wait_http() { until curl -sf "http://127.0.0.1:$1/$2" >/dev/null 2>&1; do sleep 0.2; done; }

start_side() { # side dir
  local side=$1 dir=$2 base
  mkdir -p "$dir"
  start_redis "$dir/redis.log"
  if [ "$side" = ours ]; then
    base=$(shuf -i 20000-24999 -n 1)
    "$loadgen" chat-server cluster --workers 2 --base-port "$base" --redis "redis://127.0.0.1:$redis_port" \
      > "$dir/cluster.log" 2>&1 &
  else
    base=$(shuf -i 25000-29999 -n 1)
    node peers/node-seed/cluster.js --workers 2 --base-port "$base" --redis "redis://127.0.0.1:$redis_port" \
      > "$dir/cluster.log" 2>&1 &
  fi
  cluster_pid=$!
  started+=("$cluster_pid")
  start_nginx "$dir" "$base"
  if [ "$side" = ours ]; then
    wait_http "$base" healthz; wait_http "$((base + 1))" healthz
  else
    until grep -q ready "$dir/cluster.log"; do sleep 0.2; done
  fi
  wait_http "$nginx_port" "socket.io/?EIO=4&transport=polling"
}

# context_switches PID: voluntary + involuntary context switches of PID's children so far,
# every thread of each (a process's own status counts its main thread only).
context_switches() {
  local total=0 child n
  for child in $(pgrep -P "$1"); do
    n=$(cat /proc/"$child"/task/*/status 2>/dev/null |
      awk '/^(non)?voluntary_ctxt_switches/ { s += $2 } END { print s + 0 }')
    total=$((total + n))
  done
  echo "$total"
}
