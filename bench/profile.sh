#!/usr/bin/env bash
# Where the gateway's CPU goes on pass-through: `perf record` (software cpu-clock samples with
# call graphs, which work where hardware counters are not available) on vcguard while wrk drives
# GETs through it at one concurrency; prints the top functions by self time and by inclusive time.
#
# Usage: bench/profile.sh
# Environment (defaults in brackets):
#   CONNS [16]         wrk connections
#   DURATION [15]      seconds of load recorded
#   TOP [25]           lines of each report; 0 prints only the per-request figures (no perf record)
#   VCGUARD_BIN        use this binary instead of `cargo build --release`
#   BASE_PORT [28100]  ports BASE..BASE+2 on 127.0.0.1
# Needs Debian's linux-perf and wrk (installed when missing and run as root). The release
# profile keeps line tables, so frames have names.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

CONNS=${CONNS:-16}
DURATION=${DURATION:-15}
TOP=${TOP:-25}
base_port=${BASE_PORT:-28100}
sim_port=$base_port gw_port=$((base_port + 1)) admin_port=$((base_port + 2))

need_tools linux-perf:perf wrk:wrk curl:curl openssl:openssl
bench_setup
start_sim "$sim_port"
start_gw "$gw_port" "$admin_port" "$sim_port" --policies "$repo/policies"
base="https://127.0.0.1:$gw_port"
token=$(login "$base")
[[ -n $token ]] || die "login failed"

log "warm-up, then ${DURATION}s of wrk -c$CONNS recorded by perf on vcguard (pid $GW_PID)"
wrk -t"$(wrk_threads "$CONNS")" -c"$CONNS" -d2s -H "vmware-api-session-id: $token" "$base$GET_PATH" >/dev/null
perf stat -x, -e task-clock,context-switches -p "$GW_PID" -o "$work/perf.stat" -- sleep "$DURATION" &
stat_pid=$!
if ((TOP > 0)); then
  perf record -q -F 1999 -e cpu-clock -g --call-graph dwarf,16384 -p "$GW_PID" -o "$work/perf.data" \
    -- sleep "$DURATION" 2>"$work/perf.log" &
  perf_pid=$!
fi
sleep 0.5
wrk -t"$(wrk_threads "$CONNS")" -c"$CONNS" -d"$((DURATION - 1))s" -H "vmware-api-session-id: $token" \
  "$base$GET_PATH" >"$work/wrk.out"
grep -E "Requests/sec|Latency" "$work/wrk.out"
if ((TOP > 0)); then
  wait "$perf_pid" || { cat "$work/perf.log" >&2; die "perf record failed"; }
fi
wait "$stat_pid" || die "perf stat failed"
requests=$(awk '/requests in/{print $1}' "$work/wrk.out")
# perf stat -x, lines: value,unit,event,...; task-clock is in milliseconds.
awk -F, -v n="$requests" '
  $3 ~ /^task-clock/ {cpu = $1}
  $3 ~ /^context-switches/ {cs = $1}
  END {printf "vcguard per request (%d requests): %.1f us CPU, %.2f context switches\n", n, cpu * 1000 / n, cs / n}
' "$work/perf.stat"

((TOP > 0)) || exit 0
echo "== self time (top $TOP)"
perf report -i "$work/perf.data" --no-children --sort symbol --stdio --percent-limit 0.5 2>/dev/null |
  grep -E '^ +[0-9.]+%' | head -n "$TOP"
echo "== inclusive time (top $TOP)"
perf report -i "$work/perf.data" --children --sort symbol --stdio --percent-limit 2 2>/dev/null |
  grep -E '^ +[0-9.]+% +[0-9.]+%' | head -n "$TOP"
