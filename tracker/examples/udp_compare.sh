#!/usr/bin/env bash
# UDP tracker load comparison: rivulet vs opentracker vs npm bittorrent-tracker, same load
# generator (examples/udp_load.rs), 10,000 swarms x 100 peers, numwant 50. Each tracker runs
# pinned to CPU 0 (`taskset -c 0`: one core), the generator pinned to CPU 1.
#
#   bash tracker/examples/udp_compare.sh [ROUNDS] [SECONDS] [NPM_ROUNDS]
#
# ROUNDS (3) fresh runs of rivulet and opentracker, alternating; NPM_ROUNDS (1) of npm
# bittorrent-tracker (its prefill of 1,000,000 announces alone takes minutes). SECONDS (10)
# of steady load per run, after the prefill. A tracker that is not installed is skipped
# (opentracker: `apt-get install opentracker`; npm: `bash .ci/setup-interop`). Prints one
# line per run and the median per tracker.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
rounds=${1:-3}
secs=${2:-10}
npm_rounds=${3:-1}
port=${UDP_COMPARE_PORT:-16969}

cargo build --release -q -p rivulet-tracker --example udp_load --example server
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target_dir/release/examples"
eval "$(bash .ci/setup-interop 2>/dev/null)" || true

server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
trap stop_server EXIT

# start NAME: starts that tracker on 127.0.0.1:$port, pinned to CPU 0.
start() {
  case "$1" in
    rivulet)
      taskset -c 0 "$bin/server" "127.0.0.1:$port" "127.0.0.1:$((port + 1))" 3600 >/dev/null &
      ;;
    opentracker)
      taskset -c 0 opentracker -i 127.0.0.1 -P "$port" -p "$((port + 1))" >/dev/null 2>&1 &
      ;;
    npm)
      taskset -c 0 node "$RIVULET_NODE_MODULES/bittorrent-tracker/bin/cmd.js" \
        --udp --udp-hostname 127.0.0.1 --port "$port" --quiet >/dev/null 2>&1 &
      ;;
  esac
  server_pid=$!
  sleep 1
}

available() {
  case "$1" in
    rivulet) true ;;
    opentracker) command -v opentracker >/dev/null ;;
    npm) [ -n "${RIVULET_NODE_MODULES:-}" ] && [ -f "$RIVULET_NODE_MODULES/bittorrent-tracker/bin/cmd.js" ] ;;
  esac
}

declare -A results percpu
run() {
  local name=$1
  if ! available "$name"; then
    echo "SKIP: $name is not installed"
    return
  fi
  start "$name"
  local out
  out=$(taskset -c 1 "$bin/udp_load" --target "127.0.0.1:$port" --seconds "$secs" --pid "$server_pid" 2>&1) || true
  stop_server
  local rate cost
  rate=$(printf '%s\n' "$out" | sed -n 's/.*: \([0-9]*\) announces\/s$/\1/p')
  cost=$(printf '%s\n' "$out" | sed -n 's/.* \([0-9]*\) announces per CPU-second$/\1/p')
  printf '%-12s %s\n' "$name" "$(printf '%s\n' "$out" | tail -3 | tr '\n' ' ')"
  results[$name]="${results[$name]:-} ${rate:-0}"
  percpu[$name]="${percpu[$name]:-} ${cost:-0}"
}

echo "# $(date -u +%FT%TZ) $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 0; r < rounds; r++)); do
  run rivulet
  run opentracker
done
for ((r = 0; r < npm_rounds; r++)); do
  run npm
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "# median of the steady phase: announces/s answered | announces per second of tracker CPU"
for name in rivulet opentracker npm; do
  [ -n "${results[$name]:-}" ] || continue
  printf '%-12s %8s/s | %8s per CPU-s   (runs:%s |%s)\n' "$name" \
    "$(median ${results[$name]})" "$(median ${percpu[$name]})" "${results[$name]}" "${percpu[$name]}"
done
