#!/usr/bin/env bash
# Runs a loadgen command and samples, once a second from /proc, the CPU time and resident
# memory of the load generator itself (its own, not its children's) and of every chat worker,
# nginx and redis-server it started. Prints a summary next to loadgen's own output.
#
#   bench/run-with-resources.sh target/release/loadgen run scenarios/capacity-10k.toml --out DIR
set -euo pipefail
"$@" &
main=$!
declare -A peak_rss cpu_ticks names
hz=$(getconf CLK_TCK)
sample() {
  local pids="$main $(pgrep -f 'chat-server worker' || true) $(pgrep -x nginx || true) $(pgrep -x redis-server || true)"
  for pid in $pids; do
    [ -r "/proc/$pid/status" ] || continue
    local rss ticks
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
    [ -n "$rss" ] || continue
    if [ "${peak_rss[$pid]:-0}" -lt "$rss" ]; then peak_rss[$pid]=$rss; fi
    cpu_ticks[$pid]=$ticks
    if [ "$pid" = "$main" ]; then names[$pid]=loadgen; else names[$pid]=$(tr '\0' ' ' < "/proc/$pid/cmdline" | cut -c1-60); fi
  done
}
while kill -0 "$main" 2>/dev/null; do sample; sleep 1; done
wait "$main" || status=$?
echo
echo "resources (peak RSS, CPU seconds), sampled once a second:"
for pid in "${!peak_rss[@]}"; do
  printf '  %-8s %-62s rss %8d KiB  cpu %8.2f s\n' "$pid" "${names[$pid]}" "${peak_rss[$pid]}" \
    "$(echo "${cpu_ticks[$pid]} $hz" | awk '{print $1 / $2}')"
done | sort -k2
exit "${status:-0}"
