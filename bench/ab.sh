#!/usr/bin/env bash
# Two vcguard builds side by side in front of one simulator, measured in alternation: throughput
# and CPU per pass-through call of each, and their ratio. On a VM whose speed drifts between runs
# (compare.sh's nginx figure can move by a third from one run to the next), the two builds see the
# same drift, so the ratio of one run is the figure for a hot-path change.
#
# Usage: A=path/to/before B=path/to/after bench/ab.sh
# Environment (defaults in brackets):
#   A, B                 the two vcguard binaries (required)
#   LEVELS ["16 128"]    concurrency levels (wrk connections)
#   ROUNDS [4]           rounds per level; each round runs A and B once, the order alternating
#   DURATION [8]         seconds per wrk run
#   BASE_PORT [28400]    ports BASE..BASE+4 on 127.0.0.1
#   QUIET_WAIT [120]     seconds to wait before each level for other processes to go quiet
#   TOGETHER [0]         1: load A and B at the same time (one wrk each) instead of one after the
#                        other; both then see the very same machine, and CPU per call is the figure
#                        to read (the two builds share the cores, so req/s says less)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

[[ -n ${A:-} && -n ${B:-} ]] || die "set A and B to the two vcguard binaries"
LEVELS=${LEVELS:-"16 128"}
ROUNDS=${ROUNDS:-4}
DURATION=${DURATION:-8}
base_port=${BASE_PORT:-28400}
sim_port=$base_port

need_tools wrk:wrk curl:curl openssl:openssl
VCGUARD_BIN=$A bench_setup
cp "$B" "$work/vcguard-b"

start_sim "$sim_port"
declare -A gw_pid url token
for build in A B; do
  port=$((base_port + 1))
  if [[ $build == B ]]; then port=$((base_port + 3)) bin=$work/vcguard-b; fi
  start_gw "$port" "$((port + 1))" "$sim_port" --policies "$repo/policies"
  gw_pid[$build]=$GW_PID
  url[$build]="https://127.0.0.1:$port"
  token[$build]=$(login "${url[$build]}")
  [[ -n ${token[$build]} ]] || die "login through $build failed"
done

log "machine: $(nproc) cores, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
log "A: $A"
log "B: $B"

run() { # build conns out
  wrk -t "$(wrk_threads "$2")" -c "$2" -d "${DURATION}s" --timeout 10s --latency \
    -H "vmware-api-session-id: ${token[$1]}" "${url[$1]}$GET_PATH" >"$3" 2>&1
}

for build in A B; do run "$build" 16 /dev/null; done # warm-up: handshakes, pools, caches

printf '%-6s %-5s %-5s %10s %10s %14s %8s\n' conns round build req/s p99_us cpu_us/call foreign%
declare -A rps cpu
for conns in $LEVELS; do
  wait_quiet
  for round in $(seq "$ROUNDS"); do
    order=(A B)
    ((round % 2 == 0)) && order=(B A)
    if [[ ${TOGETHER:-0} == 1 ]]; then
      batches=("A B")
    else
      batches=("${order[@]}")
    fi
    for batch in "${batches[@]}"; do
      before=$(cpu_snapshot "${gw_pid[@]}" "$SIM_PID")
      declare -A j0=() j1=()
      for build in $batch; do j0[$build]=$(proc_jiffies "${gw_pid[$build]}"); done
      loads=()
      for build in $batch; do
        run "$build" "$conns" "$work/wrk-$build.out" &
        loads+=($!)
      done
      wait "${loads[@]}"
      for build in $batch; do j1[$build]=$(proc_jiffies "${gw_pid[$build]}"); done
      after=$(cpu_snapshot "${gw_pid[@]}" "$SIM_PID")
      for build in $batch; do
        read -r r _ p99 non2xx sock reqs < <(parse_wrk "$work/wrk-$build.out")
        ((non2xx + sock == 0)) || die "$build at c=$conns: $non2xx non-2xx answers, $sock socket errors"
        c=$(echo "(${j1[$build]} - ${j0[$build]}) * 10000 / $reqs" | bc -l)
        printf '%-6s %-5s %-5s %10s %10s %14.1f %8s\n' "$conns" "$round" "$build" "$r" "$p99" "$c" \
          "$(foreign_pct "$before" "$after")"
        rps[$conns,$build]+="$r "
        cpu[$conns,$build]+="$c "
      done
    done
  done
done

echo
printf '%-6s %14s %14s %10s %16s %16s %10s\n' conns A_req/s B_req/s B/A A_cpu_us/call B_cpu_us/call B/A
for conns in $LEVELS; do
  ra=$(tr ' ' '\n' <<<"${rps[$conns,A]}" | grep . | median)
  rb=$(tr ' ' '\n' <<<"${rps[$conns,B]}" | grep . | median)
  ca=$(tr ' ' '\n' <<<"${cpu[$conns,A]}" | grep . | median)
  cb=$(tr ' ' '\n' <<<"${cpu[$conns,B]}" | grep . | median)
  printf '%-6s %14.0f %14.0f %10.3f %16.1f %16.1f %10.3f\n' "$conns" "$ra" "$rb" \
    "$(echo "$rb / $ra" | bc -l)" "$ca" "$cb" "$(echo "$cb / $ca" | bc -l)"
done
echo "(medians of $ROUNDS rounds; cpu_us/call is the gateway process's user+system CPU)"
