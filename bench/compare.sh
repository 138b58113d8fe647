#!/usr/bin/env bash
# Pass-through throughput and latency: the simulator direct (plain HTTP) vs vcguard in front of it
# vs nginx in front of it (both TLS to the client), on one machine in one run; then the added
# latency of guarded calls (maintenance enter/exit with a change ticket) through vcguard.
#
# Usage: bench/compare.sh
# Environment (defaults in brackets):
#   LEVELS ["1 16 128"]  concurrency levels (wrk connections)
#   ROUNDS [3]           rounds per level; targets alternate within a round, order rotated per round
#   DURATION [10]        seconds per wrk run
#   WARMUP [2]           seconds of unrecorded load per target before the first level
#   PAIRS [200]          maintenance enter/exit pairs per target in the guarded-call run
#   BASE_PORT [28000]    ports BASE..BASE+3 on 127.0.0.1
#   VCGUARD_BIN          use this binary instead of `cargo build --release`
#   GW_RUST_LOG          RUST_LOG for vcguard (unset: the shipped filter, no per-request line)
#   GW_CONFIG            a vcguard TOML file for settings without a flag (e.g. [audit] outcome_write);
#                        the script's flags (listen, cert, upstream, audit file) win over it
#   QUIET_WAIT [120]     seconds to wait before each run for other processes to go quiet
#                        (the "foreign CPU" column says how much they used during each run)
#   FLOOR [0]            1: also measure examples/floor_proxy.rs, the gateway's stack (rustls,
#                        hyper, hyper-util's pool, a runtime per core) without the gateway's work
#   FLOOR_WORK_US [0]    µs of busy work the floor proxy adds to every call: a stand-in for a
#                        gateway whose own work costs that much (examples/floor_proxy.rs)
# Default run: 3 levels x 3 rounds x 3 targets x 10 s + set-up, about 5 minutes.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

LEVELS=${LEVELS:-"1 16 128"}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
PAIRS=${PAIRS:-200}
base_port=${BASE_PORT:-28000}
sim_port=$base_port gw_port=$((base_port + 1)) admin_port=$((base_port + 2)) ngx_port=$((base_port + 3))
floor_port=$((base_port + 4))
workers=$(nproc)

need_tools nginx:nginx wrk:wrk curl:curl openssl:openssl
bench_setup

start_sim "$sim_port"
start_gw "$gw_port" "$admin_port" "$sim_port" --policies "$repo/policies"

start_nginx "$ngx_port" "$sim_port"
ngx_pid=$NGX_PID

declare -A url=(
  [direct]="http://127.0.0.1:$sim_port"
  [vcguard]="https://127.0.0.1:$gw_port"
  [nginx]="https://127.0.0.1:$ngx_port"
  [floor]="https://127.0.0.1:$floor_port"
)
targets=(direct vcguard nginx)
if [[ ${FLOOR:-0} == 1 ]]; then
  (cd "$repo" && cargo build --release --quiet --example floor_proxy) || die "floor_proxy build failed"
  "$repo/target/release/examples/floor_proxy" "127.0.0.1:$floor_port" "$work/gw.pem" "$work/gw.key" \
    "http://127.0.0.1:$sim_port" >>"$work/floor.log" 2>&1 &
  FLOOR_PID=$!
  pids+=("$FLOOR_PID")
  wait_port "$floor_port" "$FLOOR_PID"
  targets+=(floor)
fi

# One session, opened through the gateway (so it has seen the Login), used on every target:
# all three reach the same simulator.
token=$(login "${url[vcguard]}")
[[ -n $token ]] || die "login failed"
for t in "${targets[@]}"; do
  code=$(bcurl -o /dev/null -w '%{http_code}' -H "vmware-api-session-id: $token" "${url[$t]}$GET_PATH")
  [[ $code == 200 ]] || die "$t: GET $GET_PATH answered $code"
done

log "machine: $(nproc) cores, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
log "vcguard: $workers tokio worker threads (default runtime); nginx: $workers worker processes"
log "levels: $LEVELS; $ROUNDS rounds x ${DURATION}s per target and level"

run_wrk() { # target conns seconds out
  wrk -t "$(wrk_threads "$2")" -c "$2" -d "${3}s" --timeout 10s --latency \
    -H "vmware-api-session-id: $token" "${url[$1]}$GET_PATH" >"$4" 2>&1
}

for t in "${targets[@]}"; do run_wrk "$t" 16 "$WARMUP" "$work/warmup-$t.txt"; done

results=$work/results.txt
: >"$results"
for c in $LEVELS; do
  for ((r = 0; r < ROUNDS; r++)); do
    for ((i = 0; i < ${#targets[@]}; i++)); do
      t=${targets[$(((i + r) % ${#targets[@]}))]}
      out=$work/wrk-$t-c$c-r$r.txt
      wait_quiet
      ours=("$SIM_PID" "$GW_PID" "$ngx_pid" $(pgrep -P "$ngx_pid" || true) ${FLOOR_PID:-})
      case $t in
        vcguard) proxy=("$GW_PID") ;;
        floor) proxy=("$FLOOR_PID") ;;
        nginx) proxy=("$ngx_pid" $(pgrep -P "$ngx_pid" || true)) ;;
        *) proxy=() ;;
      esac
      before=$(cpu_snapshot "${ours[@]}")
      sim0=$(proc_jiffies "$SIM_PID") px0=$(proc_jiffies "${proxy[@]}")
      run_wrk "$t" "$c" "$DURATION" "$out"
      foreign=$(foreign_pct "$before" "$(cpu_snapshot "${ours[@]}")")
      sim1=$(proc_jiffies "$SIM_PID") px1=$(proc_jiffies "${proxy[@]}")
      read -r rps p50 p99 non2xx sock reqs < <(parse_wrk "$out")
      # CPU microseconds per request (jiffies are 10 ms)
      sim_us=$(((sim1 - sim0) * 10000 / (reqs > 0 ? reqs : 1)))
      px_us=$(((px1 - px0) * 10000 / (reqs > 0 ? reqs : 1)))
      echo "$t $c $r $rps $p50 $p99 $non2xx $sock $reqs $foreign $px_us $sim_us" >>"$results"
      log "c=$c round $((r + 1)) $t: $rps req/s, p50 ${p50}us, p99 ${p99}us, non-2xx $non2xx, socket errors $sock, proxy CPU ${px_us}us/req, sim CPU ${sim_us}us/req, foreign CPU ${foreign}%"
    done
  done
done
kill -0 "$GW_PID" 2>/dev/null || die "vcguard died during the run"

med() { awk -v t="$1" -v c="$2" -v f="$3" '$1==t && $2==c {print $f}' "$results" | median; }
echo
echo "== Pass-through GET $GET_PATH, keep-alive, median of $ROUNDS rounds x ${DURATION}s =="
printf '%-6s %-8s %12s %10s %10s %16s %14s\n' conns target req/s p50_us p99_us proxy_cpu_us/req sim_cpu_us/req
for c in $LEVELS; do
  for t in "${targets[@]}"; do
    printf '%-6s %-8s %12.0f %10.0f %10.0f %16.0f %14.0f\n' "$c" "$t" "$(med "$t" "$c" 4)" "$(med "$t" "$c" 5)" \
      "$(med "$t" "$c" 6)" "$(med "$t" "$c" 11)" "$(med "$t" "$c" 12)"
  done
done
echo
printf '%-6s %16s %16s %16s %18s %20s\n' conns 'rps vcg/nginx' 'p99 vcg/nginx' 'rps vcg/direct' 'p50 added vs direct' 'p50 added vs nginx'
for c in $LEVELS; do
  g=$(med vcguard "$c" 4) n=$(med nginx "$c" 4) d=$(med direct "$c" 4)
  g99=$(med vcguard "$c" 6) n99=$(med nginx "$c" 6)
  g50=$(med vcguard "$c" 5) d50=$(med direct "$c" 5) n50=$(med nginx "$c" 5)
  printf '%-6s %16.3f %16.3f %16.3f %16.0fus %18.0fus\n' "$c" \
    "$(echo "$g / $n" | bc -l)" "$(echo "$g99 / $n99" | bc -l)" "$(echo "$g / $d" | bc -l)" \
    "$(echo "$g50 - $d50" | bc -l)" "$(echo "$g50 - $n50" | bc -l)"
done
if [[ -n ${FLOOR_PID:-} ]]; then
  echo
  printf '%-6s %16s %16s %24s\n' conns 'rps floor/nginx' 'rps vcg/floor' 'proxy CPU vcg-floor us/req'
  for c in $LEVELS; do
    printf '%-6s %16.3f %16.3f %24.0f\n' "$c" "$(echo "$(med floor "$c" 4) / $(med nginx "$c" 4)" | bc -l)" \
      "$(echo "$(med vcguard "$c" 4) / $(med floor "$c" 4)" | bc -l)" \
      "$(echo "$(med vcguard "$c" 11) - $(med floor "$c" 11)" | bc -l)"
  done
fi
errs=$(awk '{s += $7 + $8} END {print s + 0}' "$results")
total=$(awk '{s += $9} END {print s + 0}' "$results")
echo "requests measured: $total; non-2xx or socket errors: $errs"
echo "CPU used by other processes during the runs: median $(awk '{print $10}' "$results" | median)%, max $(awk '$10 > m {m = $10} END {print m + 0}' "$results")% of the machine"

# Guarded calls: PAIRS sequential enter/exit pairs on one keep-alive connection per target
# (curl with a config of chained transfers, HTTP/1.1), plus the same number of pass-through GETs
# measured the same way so the proxy hop and the guarded-call work can be told apart.
# The first 10 pairs (connection set-up, warm-up) are not counted.
guarded_config() { # base_url kind
  local i n=$((PAIRS + 10)) m common="http1.1
cacert = \"$work/gw.pem\""
  for ((i = 0; i < n; i++)); do
    if [[ $2 == get ]]; then
      printf 'url = "%s%s"\nheader = "vmware-api-session-id: %s"\n' "$1" "$GET_PATH" "$token"
      printf 'output = "/dev/null"\nwrite-out = "%%{http_code} %%{time_total} %%{num_connects}\\n"\n%s\nnext\n' "$common"
      printf 'url = "%s%s"\nheader = "vmware-api-session-id: %s"\n' "$1" "$GET_PATH" "$token"
      printf 'output = "/dev/null"\nwrite-out = "%%{http_code} %%{time_total} %%{num_connects}\\n"\n%s\nnext\n' "$common"
      continue
    fi
    for m in EnterMaintenanceMode_Task ExitMaintenanceMode_Task; do
      maintenance_call_config "$1" "$m"
      printf 'output = "/dev/null"\nwrite-out = "%%{http_code} %%{time_total} %%{num_connects}\\n"\n%s\nnext\n' "$common"
    done
  done
}
declare -A g50 g99
for kind in guarded get; do
  for t in direct vcguard; do
    guarded_config "${url[$t]}" "$kind" | sed '$d' >"$work/curl-$kind-$t.cfg"
    curl -sS -K "$work/curl-$kind-$t.cfg" >"$work/curl-$kind-$t.txt"
    tail -n +21 "$work/curl-$kind-$t.txt" >"$work/curl-$kind-$t.kept"
    bad=$(awk '$1 != 200' "$work/curl-$kind-$t.kept" | wc -l)
    ((bad == 0)) || die "$kind via $t: $bad answers were not 200"
    reconnects=$(awk '{s += $3} END {print s + 0}' "$work/curl-$kind-$t.kept")
    ((reconnects == 0)) || log "warning: $kind via $t opened $reconnects new connections while measured"
    g50[$kind-$t]=$(awk '{print $2 * 1e6}' "$work/curl-$kind-$t.kept" | median)
    g99[$kind-$t]=$(awk '{print $2 * 1e6}' "$work/curl-$kind-$t.kept" | sort -g |
      awk '{v[NR] = $1} END {i = int(NR * 0.99); if (i < 1) i = 1; print v[i]}')
  done
done
echo
echo "== Sequential calls on one keep-alive connection (curl, HTTP/1.1), $((PAIRS * 2)) calls per row =="
printf '%-34s %12s %12s %14s %14s\n' call direct_p50 vcguard_p50 added_p50 added_p99
for kind in guarded get; do
  label=$([[ $kind == guarded ]] && echo "Enter/ExitMaintenanceMode_Task+tkt" || echo "GET HostSystem/host-21/name")
  printf '%-34s %10.0fus %10.0fus %12.0fus %12.0fus\n' "$label" "${g50[$kind-direct]}" "${g50[$kind-vcguard]}" \
    "$(echo "${g50[$kind-vcguard]} - ${g50[$kind-direct]}" | bc -l)" \
    "$(echo "${g99[$kind-vcguard]} - ${g99[$kind-direct]}" | bc -l)"
done
printf 'guarded-call work beyond the proxy hop (added p50 guarded - added p50 GET): %.0fus\n' \
  "$(echo "(${g50[guarded-vcguard]} - ${g50[guarded-direct]}) - (${g50[get-vcguard]} - ${g50[get-direct]})" | bc -l)"
if [[ -n $GW_AUDIT ]]; then
  echo "(decision, ticket check, strict body parse, and the audit decision record written and fsynced before forwarding)"
  echo "audit log: $(cat "${GW_AUDIT%.jsonl}"*.jsonl | wc -l) records in $(ls "${GW_AUDIT%.jsonl}"*.jsonl | wc -l) file(s), $(du -ch "${GW_AUDIT%.jsonl}"*.jsonl | tail -1 | cut -f1) (every call, pass-through included, gets an outcome record)"
else
  echo "(decision, ticket check and strict body parse; this build has no audit log, so no audit write or fsync)"
fi
kill -0 "$GW_PID" 2>/dev/null || die "vcguard died"
