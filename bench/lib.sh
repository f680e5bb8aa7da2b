# Shared by the bench/*.sh benchmarks (sourced, not run). Figures come from `loadgen figures`;
# this file only keeps processes, ports and the verdict table.

# Paths given on the command line are relative to where the script was started; everything
# else to the repository root.
invoked_from=$PWD
cd "$(dirname "${BASH_SOURCE[0]}")/.."
abs() { case $1 in /*) echo "$1" ;; *) echo "$invoked_from/$1" ;; esac; }

# common_flag "$@": the flags every benchmark takes (--runs N, --out DIR, --quick, --help),
# and the error for any other; sets $used to the number of arguments it took. A script's own
# flags come first in its `case`, then `*) common_flag "$@"; shift "$used" ;;`.
common_flag() {
  case $1 in
    --runs) runs=$2; used=2 ;;
    --out) out_arg=$2; used=2 ;;
    --quick) quick=1; used=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "$(basename "$0"): unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
}

# common_flags_only "$@": the whole command line of a benchmark without flags of its own: the
# common flags (defaults: 3 runs, not quick, the default folder), then after `--` the flags
# passed to every `loadgen run`, in $extra.
common_flags_only() {
  runs=3 quick=0 out_arg=
  while [ $# -gt 0 ]; do
    case $1 in
      --) shift; break ;;
      *) common_flag "$@"; shift "$used" ;;
    esac
  done
  extra=("$@")
}

# need CMD WHAT-TO-INSTALL: stops with an install hint when CMD is missing.
need() {
  command -v "$1" >/dev/null 2>&1 || { echo "$(basename "$0"): '$1' not found: $2" >&2; exit 2; }
}

# Builds the release loadgen (quietly) and sets $loadgen.
build_loadgen() {
  need cargo "install Rust (https://rustup.rs)"
  cargo build --release -q -p loadgen
  # Where cargo put it: target/, or CARGO_TARGET_DIR (or its config) when set.
  loadgen=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release/loadgen
}

# out_dir NAME [DIR]: creates runs/NAME-<timestamp> (or DIR) and sets $out to its absolute path.
out_dir() {
  if [ -n "${2:-}" ]; then out=$(abs "$2"); else out=runs/$1-$(date +%Y%m%d-%H%M%S); fi
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
}

# Processes started by the script: stopped by `stop_started` and on exit, whatever happens.
started=()
stop_started() {
  local p
  for p in "${started[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${started[@]}"; do wait "$p" 2>/dev/null || true; done
  started=()
}
trap stop_started EXIT

# in_background CMD...: runs CMD in the background and waits for it, returning its status.
# bash runs a trap only once the foreground command has ended; a loadgen run waited for this
# way is stopped (with the stack it started) as soon as the script is interrupted.
in_background() {
  local pid status=0 p kept=()
  "$@" &
  pid=$!
  started+=("$pid")
  wait "$pid" || status=$?
  for p in "${started[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
  started=("${kept[@]}")
  return "$status"
}
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
    || shuf -i 30000-32000 -n 1
}

# median V...: the median of numbers (mean of the middle two for an even count).
median() {
  [ $# -gt 0 ] || { echo NaN; return; }
  printf '%s\n' "$@" | sort -g | awk '
    function show(x) { if (x == int(x) || x == "inf") print x; else { s = sprintf("%.3f", x); sub(/0+$/, "", s); print s } }
    {v[NR]=$1} END {if (NR==0) print "NaN"; else if (NR%2) show(v[(NR+1)/2]); else show((v[NR/2]+v[NR/2+1])/2)}'
}

# quick_ramp FILE: writes scenarios/ramp.toml cut down for --quick (4 steps of 5 s, 20 s) to
# FILE; run it with `--members 200 --rooms 10`.
quick_ramp() {
  sed -e 's/^duration = .*/duration = "20s"/' \
      -e 's/step = "10s", max_steps = 18/step = "5s", max_steps = 4/' scenarios/ramp.toml > "$1"
}

# ratio NUM DEN: NUM / DEN with two decimals; `inf` when only DEN is 0, `NaN` when both are.
ratio() {
  awk -v n="$1" -v d="$2" 'BEGIN { if (d > 0) printf "%.2f", n / d; else print (n > 0 ? "inf" : "NaN") }'
}

# holds VALUE OP LIMIT: true when VALUE OP LIMIT (OP: < <= > >=), numbers or inf/NaN.
holds() {
  awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
    if (v == "inf") v = 1e300; else if (v == "NaN" || v == "") exit 1; else v += 0
    l += 0
    if (op == "<") exit !(v < l); if (op == "<=") exit !(v <= l)
    if (op == ">") exit !(v > l); if (op == ">=") exit !(v >= l); exit 1 }'
}

# The verdict table: verdict NAME MEASURED OP LIMIT [UNIT] adds a row; print_verdicts prints
# it and returns 1 when a row failed.
verdict_rows=()
failed=0
verdict() {
  local name=$1 measured=$2 op=$3 limit=$4 unit=${5:-} result=pass
  holds "$measured" "$op" "$limit" || { result=FAIL; failed=1; }
  verdict_rows+=("$(printf '  %-44s %14s  %-14s %s' "$name" "$measured$unit" "$op $limit$unit" "$result")")
}
info() { # NAME MEASURED [UNIT]: a row without a target
  verdict_rows+=("$(printf '  %-44s %14s' "$1" "$2${3:-}")")
}
print_verdicts() { # TITLE
  echo
  echo "$1"
  printf '  %-44s %14s  %-14s %s\n' "figure" "measured" "target" "verdict"
  printf '%s\n' "${verdict_rows[@]}"
  echo
  if [ "$failed" = 0 ]; then echo "verdict: PASS"; else echo "verdict: FAIL"; fi
  return "$failed"
}
