#!/usr/bin/env bash
# Instructions per pass-through call: vcguard runs under valgrind's callgrind while wrk sends GETs
# through it; the instruction count (Ir) of a measured window is divided by the outcome records
# the audit log gained in that window. Unlike CPU time it does not move with other load on a
# shared machine, so two builds can be compared on a noisy host. What it does not see: cache
# misses, the kernel, and SHA-256 runs in software under valgrind (its hardware instructions are
# hidden), so the hashing per call weighs more here than on the real CPU.
#
# Usage: bench/instructions.sh
# Environment (defaults in brackets):
#   CONNS [1]          wrk connections (1: every call is handled alone, the steadiest figure)
#   DURATION [12]      seconds measured, after 8 s of unmeasured load (TLS handshakes, warm-up)
#   VCGUARD_BIN        use this binary instead of `cargo build --release`
#   BASE_PORT [28300]  ports BASE..BASE+2 on 127.0.0.1
#   KEEP_PROFILE       copy the callgrind profile of the window there (for callgrind_annotate)
# Needs Debian's valgrind and wrk (installed when missing and run as root).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

CONNS=${CONNS:-1}
DURATION=${DURATION:-12}
base_port=${BASE_PORT:-28300}
sim_port=$base_port gw_port=$((base_port + 1)) admin_port=$((base_port + 2))

need_tools valgrind:valgrind valgrind:callgrind_control wrk:wrk curl:curl openssl:openssl
bench_setup
start_sim "$sim_port"
audit=$work/audit.jsonl
valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" \
  "$bin" serve --listen "127.0.0.1:$gw_port" --admin-listen "127.0.0.1:$admin_port" \
  --cert "$work/gw.pem" --key "$work/gw.key" --upstream "http://127.0.0.1:$sim_port" \
  --audit "$audit" --policies "$repo/policies" >"$work/gw.log" 2>&1 &
GW_PID=$!
pids+=("$GW_PID")
for _ in $(seq 600); do
  curl -sf "http://127.0.0.1:$admin_port/readyz" >/dev/null && break
  kill -0 "$GW_PID" 2>/dev/null || { tail -5 "$work/gw.log" >&2; die "vcguard exited at start"; }
  sleep 0.2
done
base="https://127.0.0.1:$gw_port"
token=$(login "$base")
[[ -n $token ]] || die "login failed"

log "wrk -c$CONNS for $((DURATION + 14))s; callgrind counts ${DURATION}s of it"
wrk -t"$(wrk_threads "$CONNS")" -c"$CONNS" -d"$((DURATION + 14))s" \
  -H "vmware-api-session-id: $token" "$base$GET_PATH" >"$work/wrk.out" &
wrk_pid=$!
sleep 8
callgrind_control -z "$GW_PID" >/dev/null 2>&1
before=$(wc -l <"$audit")
sleep "$DURATION"
callgrind_control -d "$GW_PID" >/dev/null 2>&1
after=$(wc -l <"$audit")
wait "$wrk_pid"
sleep 1
profile=$(ls -t "$work"/callgrind.out.* | head -1)
instructions=$(awk '/^(summary|totals):/{print $2; exit}' "$profile")
calls=$((after - before))
((calls > 0)) || die "no calls in the measured window"
echo "vcguard per pass-through call ($calls calls, c=$CONNS): $((instructions / calls)) instructions"
[[ -z ${KEEP_PROFILE:-} ]] || cp "$profile" "$KEEP_PROFILE"
