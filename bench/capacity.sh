#!/usr/bin/env bash
# Benchmark 2 of issue 6: capacity. Members connected and heartbeating through nginx (6 nginx
# workers) into 2 chat workers behind Redis, one 64-byte message per member per minute, in
# rooms of 100 (scenarios/capacity.toml; `--room-size N` for others), in rising stages: 10,000,
# 20,000, 30,000 members by default. The room size sets the fan-out load: at one message per
# member per minute, M members in rooms of S make M * S / 60 deliveries per second (30,000 in
# rooms of 100: 50,000/s; in rooms of 20: 10,000/s). A stage fails on any connect error, any lost delivery, or fan-out p99 >= 100 ms; a
# run stops at its first failed stage. Every stage is a fresh `loadgen run` of the local stack
# (loadgen starts Redis, workers and nginx, and samples their CPU and memory from /proc).
#
# Memory per member is the SLOPE of peak RSS against members connected between a run's stages
# (least squares over its stages, `loadgen figures --per members`), not total / members: the
# fixed part (binaries, runtimes, buffers) does not count against each member. Every stage
# runs the same number of chat workers, nginx workers and loadgen processes (see Sizing), so
# the fixed parts are the same in every stage. Workers' RSS is the peak of the chat workers'
# summed samples; loadgen's is the parent and its part processes summed.
#
# Verdicts, over N runs: the 30,000 stage held in a majority of runs (its median fan-out p99
# is printed); the median over runs of the workers' slope <= 16 KiB per member; of loadgen's
# slope <= 10 KiB per member. Exit 0 when all hold, 1 when one fails, 2 on a setup error.
#
#   bench/capacity.sh [--runs N] [--stages 10000,20000,30000] [--room-size N] [--out DIR]
#                     [--quick] [-- extra loadgen run flags]
#
#   --runs N       runs of the whole ladder (default 3)
#   --stages LIST  member counts, rising (default 10000,20000,30000); the verdict's target
#                  is the last one
#   --room-size N  members per room (default 100)
#   --quick        a check of the script, not a measurement: 1 run of stages 400,800, 10 s
#                  each (about 1.5 minutes)
#
# Writes runs/capacity-<time>/run-I/stage-N/ (results.json, report.html, the stack's logs).
# A full run takes about 6 minutes per ladder (stack start, ramp at 1,000 members/s, 60 s
# steady, drain, ramp down): about 18 minutes for 3 runs.
#
# Sizing, from the top stage and the same in every stage (so the fixed parts do not change
# the slopes): a process here may hold 20,000 open files, and a member takes one in a chat
# worker, one in the generator and two in nginx. So the ladder runs ceil(top / 15,000) chat
# workers (at least 2), ceil(2 x top / 15,000) nginx workers (at least 6) and ceil(top / 15,000)
# loadgen processes (at least 2), leaving a quarter of each process's files for the uneven
# spread of ip_hash and reuseport: 30,000 members get 2, 6 and 2; 100,000 get 7, 14 and 7.
#
# Needs: cargo, redis-server, nginx; members bind 127.0.K.1 spread addresses.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

runs=3 quick=0 out_arg= stages=10000,20000,30000 room_size=100
while [ $# -gt 0 ]; do
  case $1 in
    --stages) stages=$2; shift 2 ;;
    --room-size) room_size=$2; shift 2 ;;
    --) shift; break ;;
    *) common_flag "$@"; shift "$used" ;;
  esac
done
extra=("$@")
if [ "$quick" = 1 ]; then
  runs=1 stages=400,800
  extra=(--duration 10s "${extra[@]}")
fi
IFS=, read -r -a stage_list <<< "$stages"
top=${stage_list[-1]}
per_process=15000
ceil_div() { echo $(( ($1 + $2 - 1) / $2 )); }
at_least() { if [ "$1" -gt "$2" ]; then echo "$1"; else echo "$2"; fi; }
workers=$(at_least "$(ceil_div "$top" $per_process)" 2)
nginx_workers=$(at_least "$(ceil_div $((2 * top)) $per_process)" 6)
processes=$(at_least "$(ceil_div "$top" $per_process)" 2)

need redis-server "apt-get install -y redis-server"
need nginx "apt-get install -y nginx"
build_loadgen
out_dir capacity "$out_arg"
echo "sizing for $top members: $workers chat workers, $nginx_workers nginx workers, $processes loadgen processes"

figs=(-m members -m connect_errors -m lost -m fanout_p99_ms -m rss_kib:chat\ worker\* -m rss_kib:loadgen -m cpu_s:server -m cpu_s:loadgen)
top_held=() top_p99=() worker_slopes=() loadgen_slopes=()
for i in $(seq 1 "$runs"); do
  done_stages=()
  held_top=0
  mkdir -p "$out/run-$i"
  for n in "${stage_list[@]}"; do
    dir=$out/run-$i/stage-$n
    rooms=$(( (n + room_size - 1) / room_size ))
    echo "== run $i, stage $n members ($rooms rooms of $room_size)"
    status=0
    in_background "$loadgen" run scenarios/capacity.toml --members "$n" --rooms "$rooms" \
      --workers "$workers" --nginx-workers "$nginx_workers" --processes "$processes" \
      --out "$dir" -q "${extra[@]}" > "$dir.txt" 2>&1 || status=$?
    [ -f "$dir/results.json" ] || { echo "no results in $dir; see $dir.txt" >&2; exit 2; }
    read -r members errs lost p99 wrss lrss scpu lcpu < <("$loadgen" figures --median "${figs[@]}" "$dir/results.json")
    echo "   connected $members, connect errors $errs, lost $lost, fan-out p99 $p99 ms;" \
      "peak RSS workers $wrss KiB, loadgen $lrss KiB; CPU s server $scpu, loadgen $lcpu"
    done_stages+=("$dir/results.json")
    if [ "$n" = "$top" ]; then
      top_p99+=("$p99")
      [ "$status" = 0 ] && held_top=1
    fi
    if [ "$status" != 0 ]; then
      echo "   stage $n failed (loadgen exit $status; thresholds in $dir.txt): run $i stops here"
      break
    fi
  done
  top_held+=("$held_top")
  [ "${#top_p99[@]}" -ge "$i" ] || top_p99+=(inf)
  if [ "${#done_stages[@]}" -ge 2 ]; then
    read -r ws ls < <("$loadgen" figures --per members -m rss_kib:chat\ worker\* -m rss_kib:loadgen "${done_stages[@]}")
    worker_slopes+=("$ws") loadgen_slopes+=("$ls")
    echo "run $i: RSS per member (slope over ${#done_stages[@]} stages): workers $ws KiB, loadgen $ls KiB"
  else
    echo "run $i: fewer than 2 stages ran: no per-member slope"
  fi
done

echo
echo "every stage:"
"$loadgen" figures "${figs[@]}" "$out"/run-*/stage-*/results.json
held_runs=$(printf '%s\n' "${top_held[@]}" | grep -c 1 || true)
info "runs where the $top stage held" "$held_runs of $runs"
verdict "$top members held in a majority of runs (runs)" "$held_runs" ">" "$(awk -v r="$runs" 'BEGIN{print r/2}')"
verdict "fan-out p99 at $top members, median" "$(median "${top_p99[@]}")" "<" 100 " ms"
verdict "workers' RSS per member, median slope" "$(median "${worker_slopes[@]}")" "<=" 16 " KiB"
verdict "loadgen RSS per member, median slope" "$(median "${loadgen_slopes[@]}")" "<=" 10 " KiB"
[ "$quick" = 1 ] && echo "(--quick: a check of the script, not a measurement)"
echo "runs and reports: $out"
print_verdicts "benchmark 2: capacity, stages $stages, $runs run(s)"
