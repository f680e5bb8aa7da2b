#!/usr/bin/env bash
# The soak (issue 13): the local stack (2 chat workers behind Redis and nginx, started by
# loadgen) for a long time with members joining and leaving all the time across many rooms,
# a worker SIGKILLed at a third of the run and Redis stopped for 3 s at two thirds. Every 10 s
# it samples each worker's RSS and open file descriptors (/proc) and its own view of rooms and
# subscribed channels (/stats), and at the end asks Redis (PUBSUB NUMSUB) how many subscribers
# each room's channel has.
#
# Prints, and exits 1 when one drifts:
#   - worker RSS at the start and the end of the steady part, as a slope per hour (target:
#     under 5% of the start per hour, and under 16 MiB/h);
#   - open file descriptors per member (start vs end of the steady part; target: within 10%);
#   - subscribed channels vs rooms with members, each sample outside the fault windows (target:
#     never apart for 3 samples in a row) and Redis's own count at the last sample;
#   - deliveries lost outside the fault windows: results.json `deliveries.lost` minus each
#     fault's `lost_in_window` (target: 0).
#
#   bench/soak.sh [--duration 30m] [--members 2000] [--rooms 400] [--out DIR]
#
# Writes DIR (default runs/soak-<time>/): soak.toml (the scenario run), samples.tsv, the run's
# results.json and report.html. Needs cargo, redis-server (redis-cli), nginx, python3.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

duration=30m members=2000 rooms=400 out_arg=
while [ $# -gt 0 ]; do
  case $1 in
    --duration) duration=$2; shift 2 ;;
    --members) members=$2; shift 2 ;;
    --rooms) rooms=$2; shift 2 ;;
    *) common_flag "$@"; shift "$used" ;;
  esac
done
need redis-server "apt-get install -y redis-server"
need redis-cli "apt-get install -y redis-tools"
need nginx "apt-get install -y nginx"
seconds=$(python3 -c '
import re, sys
t = sys.argv[1]; m = re.fullmatch(r"(\d+)(s|m|h)", t)
if not m: sys.exit("--duration: whole seconds, minutes or hours, e.g. 30m")
print(int(m[1]) * {"s": 1, "m": 60, "h": 3600}[m[2]])' "$duration")
[ "$seconds" -ge 120 ] || { echo "soak.sh: --duration must be at least 2m" >&2; exit 2; }

build_loadgen
out_dir soak "$out_arg"
kill_at=$((seconds / 3)) stop_at=$((seconds * 2 / 3))
cat >"$out/soak.toml" <<TOML
# Written by bench/soak.sh: $members members in $rooms rooms for $duration, half of them leaving
# and rejoining every minute, worker 1 killed at ${kill_at} s, Redis stopped for 3 s at ${stop_at} s.
name = "soak"
description = "soak: churn across $rooms rooms, a killed worker, a Redis stop"
duration = "${seconds}s"
seed = 13

[target]
local = { workers = 2, nginx_workers = 2 }

[population]
rooms = $rooms
members = $members
ramp = 200

[traffic]
rate_per_member = 0.2
message_size = 64
churn_per_min = 0.5
reconnect = "backoff"
deadline = "5s"

[[faults]]
at = "${kill_at}s"
kill_worker = 1

[[faults]]
at = "${stop_at}s"
stop_redis = "3s"
TOML

# The run, in the background; the samples come from its stack's processes.
"$loadgen" run "$out/soak.toml" --out "$out" >"$out/loadgen.log" 2>&1 &
run=$!
started+=("$run")

descends_from() { # PID ANCESTOR
  local p=$1
  while [ "$p" -gt 1 ]; do
    [ "$p" = "$2" ] && return 0
    p=$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null) || return 1
  done
  return 1
}
arg_after() { tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | awk -v f="$2" 'prev == f {print; exit} {prev = $0}'; }

printf 't\tworker\tpid\trss_kib\tfds\tsockets\trooms\tchannels\tto_reconcile\n' >"$out/samples.tsv"
sample() {
  local t=$1 pid
  for pid in $(pgrep -f 'chat-server worker' || true); do
    descends_from "$pid" "$run" || continue
    local id port rss fds stats
    id=$(arg_after "$pid" --worker-id)
    port=$(arg_after "$pid" --listen | sed 's/.*://')
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || continue
    fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
    stats=$(curl -fsS --max-time 2 "http://127.0.0.1:$port/stats" 2>/dev/null) || continue
    python3 -c '
import json, sys
s = json.loads(sys.argv[1])
print("\t".join(str(x) for x in [sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6],
      s["sockets"], s["rooms"], s["subscribed_channels"], s.get("channels_to_reconcile", 0)]))' \
      "$stats" "$t" "$id" "$pid" "$rss" "$fds" >>"$out/samples.tsv"
  done
}
redis_channels() { # subscribers of the room channels, as Redis counts them
  local pid port
  for pid in $(pgrep -x redis-server || true); do
    descends_from "$pid" "$run" || continue
    # Redis rewrites its command line to "redis-server 127.0.0.1:PORT".
    port=$(tr '\0' ' ' <"/proc/$pid/cmdline" | grep -o ':[0-9]*' | tail -1 | tr -d :)
    redis-cli -p "$port" PUBSUB NUMSUB $(redis-cli -p "$port" PUBSUB CHANNELS) |
      awk 'NR % 2 == 0 {s += $1} END {print s + 0}'
  done
}

begin=$SECONDS last_redis=""
while kill -0 "$run" 2>/dev/null; do
  t=$((SECONDS - begin))
  sample "$t"
  # Redis's count and the workers' own, at the same moment, while the run is steady.
  if [ $t -ge $((seconds - 60)) ] && [ $t -lt $((seconds - 10)) ]; then
    last_redis="$(redis_channels || echo "?") $(awk -F'\t' -v t="$t" '$1 == t {s += $8} END {print s + 0}' "$out/samples.tsv")"
  fi
  sleep 10
done
status=0
wait "$run" || status=$?
started=()

python3 - "$out" "$seconds" "$kill_at" "$stop_at" "$status" "${last_redis:-}" <<'PY'
import csv, json, sys
out, seconds, kill_at, stop_at, status, redis_subs = sys.argv[1], *map(int, sys.argv[2:6]), sys.argv[6]
rows = list(csv.DictReader(open(f"{out}/samples.tsv"), delimiter="\t"))
for r in rows:
    for k in r: r[k] = int(r[k])
r = json.load(open(f"{out}/results.json"))
steady_from, steady_to = max(60, 0.1 * seconds), seconds - 30
windows = [(kill_at - 10, kill_at + 60), (stop_at - 10, stop_at + 60)]
quiet = lambda t: steady_from <= t <= steady_to and not any(a <= t <= b for a, b in windows)
failed = []
print(f"\nsoak of {seconds} s: {out}")
print(f"  loadgen exit status {status}, verdict {r.get('verdict')}")
for w in sorted({x["worker"] for x in rows}):
    mine = [x for x in rows if x["worker"] == w and quiet(x["t"])]
    # Worker 1 is killed: measure it from its restart (its last pid).
    last_pid = mine[-1]["pid"] if mine else None
    mine = [x for x in mine if x["pid"] == last_pid]
    if len(mine) < 2:
        print(f"  worker {w}: too few samples"); failed.append(f"worker {w} samples"); continue
    a, b = mine[0], mine[-1]
    hours = max((b["t"] - a["t"]) / 3600, 1e-9)
    slope = (b["rss_kib"] - a["rss_kib"]) / hours
    fd_a, fd_b = a["fds"] / max(a["sockets"], 1), b["fds"] / max(b["sockets"], 1)
    print(f"  worker {w}: RSS {a['rss_kib']/1024:.1f} -> {b['rss_kib']/1024:.1f} MiB over {b['t']-a['t']} s "
          f"({slope/1024:+.1f} MiB/h); fds {a['fds']} ({a['sockets']} sockets) -> {b['fds']} ({b['sockets']} sockets)")
    if slope > 0.05 * a["rss_kib"] and slope > 16 * 1024:
        failed.append(f"worker {w} RSS grows {slope/1024:.1f} MiB/h")
    if fd_b > fd_a * 1.1 + 0.05:
        failed.append(f"worker {w} fds per socket {fd_a:.2f} -> {fd_b:.2f}")
    streak = worst = 0
    for x in mine:
        streak = streak + 1 if x["channels"] != x["rooms"] else 0
        worst = max(worst, streak)
    print(f"    channels == rooms in {sum(x['channels'] == x['rooms'] for x in mine)} of {len(mine)} samples "
          f"(longest mismatch {worst} samples); last: {mine[-1]['channels']} channels, {mine[-1]['rooms']} rooms")
    if worst >= 3:
        failed.append(f"worker {w} channels != rooms for {worst} samples")
if redis_subs:
    theirs, ours = redis_subs.split()
    print(f"  Redis PUBSUB NUMSUB near the end: {theirs} subscriptions; the workers' own count at that moment: {ours}")
lost = r["deliveries"]["lost"]
in_windows = sum(f.get("lost_in_window", 0) for f in r.get("faults", []))
outside = lost - in_windows
print(f"  deliveries owed {r['deliveries']['expected']}, lost {lost}, in the fault windows {in_windows}, outside {outside}")
for f in r.get("faults", []):
    print(f"    {f['action']} at {f['at_s']:.0f} s: recovered after {f.get('recovered_after_ms')} ms, lost in window {f['lost_in_window']}")
if outside > 0:
    failed.append(f"{outside} deliveries lost outside the fault windows")
print("verdict: " + ("PASS" if not failed else "FAIL: " + "; ".join(failed)))
sys.exit(1 if failed else 0)
PY
