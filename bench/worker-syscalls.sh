#!/usr/bin/env bash
# Issue 15: system calls and context switches per delivery of one chat worker. Runs
# scenarios/generator-efficiency.toml on the local stack for 40 s (1,000 members in rooms of
# 100, 20,000 deliveries/s), and after 22 s (steady traffic) attaches `strace -c -f` to worker 0
# for 10 s. Prints the system calls per delivery (deliveries counted from the worker's `/stats`
# before and after) and the context switches of all its threads in the same window. strace
# slows the worker: read the counts, not the times. Not a verdict: figures for BENCHMARKS.md.
#
#   bench/worker-syscalls.sh        (CHAT_RUNTIME=current-thread for the other runtime)
#
# Needs: cargo, strace, curl, python3, redis-server, nginx.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

need strace "apt-get install -y strace"
need curl "apt-get install -y curl"
need redis-server "apt-get install -y redis-server"
need nginx "apt-get install -y nginx"
build_loadgen
out_dir worker-syscalls ""

"$loadgen" run scenarios/generator-efficiency.toml --duration 40s --out "$out/run" -q \
  > "$out/run.txt" 2>&1 &
run_pid=$!
started+=("$run_pid")
sleep 22
pid=$(pgrep -f 'chat-server worker .*--worker-id 0' | head -1)
[ -n "$pid" ] || { echo "no chat worker 0 running; see $out/run.txt" >&2; exit 2; }
listen=$(tr '\0' ' ' < "/proc/$pid/cmdline" | sed -n 's/.*--listen \([^ ]*\).*/\1/p')
delivered() { curl -sf "http://$listen/stats" | python3 -c 'import json, sys; print(json.load(sys.stdin)["delivered"])'; }
switches() { cat /proc/"$pid"/task/*/status | awk '/^(non)?voluntary_ctxt_switches/ { s += $2 } END { print s + 0 }'; }
d0=$(delivered) c0=$(switches)
timeout -s INT 10 strace -c -f -p "$pid" -o "$out/strace.txt" || true
d1=$(delivered) c1=$(switches)
wait "$run_pid" || true
d=$((d1 - d0))
echo "worker 0 (pid $pid, runtime ${CHAT_RUNTIME:-multi-thread}): $d deliveries in 10 s under strace," \
  "$(awk -v c=$((c1 - c0)) -v d="$d" 'BEGIN { printf "%.3f", (d > 0 ? c / d : 0) }') context switches each"
awk -v d="$d" '$NF != "total" && $4 ~ /^[0-9]+$/ && d > 0 { printf "  %-14s %9d calls  %.3f per delivery\n", $NF, $4, $4 / d }
  $NF == "total" && d > 0 { printf "  %-14s %9d calls  %.3f per delivery\n", "all", $4, $4 / d }' "$out/strace.txt"
echo "strace table: $out/strace.txt; the run: $out/run"
