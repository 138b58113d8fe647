#!/usr/bin/env bash
# Bounded soak with injected faults. Mixed load (pass-through GETs and guarded ChangeLockdownMode
# calls, bench/soak.lua) runs through vcguard for SOAK_SECONDS while vcguard's RSS is sampled
# every 10 s. At fixed points of the run:
#   25%  a valid policy file is added to the live policy dir (hot reload under load);
#   40%  the simulator is killed (SIGKILL), the gateway must answer 502 vim faults, and after
#        FAULT_SECONDS it is restarted on the same port and the gateway must recover;
#   55%  clients disconnect mid-request (1 GiB uploads and downloads cut off by curl --max-time);
#   65%  slowloris clients trickle header bytes (the gateway runs with header_read_timeout_secs=5).
# The gateway runs with --access-log so its per-request lines can be counted.
# Prints the totals, non-2xx counts by status and whether the faults explain them, RSS at start /
# after warm-up / peak / end, growth after warm-up, and whether the gateway is still alive.
# Exit status: 0 all checks passed, 1 the gateway died (crash), 2 another check failed.
#
# Usage: bench/soak.sh
# Environment (defaults in brackets):
#   SOAK_SECONDS [600]       length of the load
#   SOAK_CONNS [32]          wrk connections
#   SOAK_DELAY_MS [2]        think time per connection between requests
#   SOAK_GUARDED_EVERY [10]  every Nth request of a connection is a guarded lockdown call
#   FAULT_SECONDS [5]        how long the simulator stays down
#   BASE_PORT [28200]        ports BASE..BASE+2 on 127.0.0.1
#   VCGUARD_BIN              use this binary instead of `cargo build --release`
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SOAK_SECONDS=${SOAK_SECONDS:-600}
SOAK_CONNS=${SOAK_CONNS:-32}
export SOAK_DELAY_MS=${SOAK_DELAY_MS:-2}
export SOAK_GUARDED_EVERY=${SOAK_GUARDED_EVERY:-10}
FAULT_SECONDS=${FAULT_SECONDS:-5}
base_port=${BASE_PORT:-28200}
sim_port=$base_port gw_port=$((base_port + 1)) admin_port=$((base_port + 2))
((SOAK_SECONDS >= 60)) || die "SOAK_SECONDS must be at least 60"
warmup=$((SOAK_SECONDS / 5 < 60 ? SOAK_SECONDS / 5 : 60))

need_tools wrk:wrk curl:curl openssl:openssl python3:python3 bc:bc
bench_setup
export SOAK_FAULT_MARKER=$work/fault-window

cp -r "$repo/policies" "$work/policies"
cat >"$work/soak.toml" <<'EOF'
[server]
header_read_timeout_secs = 5

[policy]
reload_poll_secs = 1
EOF

start_sim "$sim_port"
start_gw "$gw_port" "$admin_port" "$sim_port" --config "$work/soak.toml" \
  --policies "$work/policies" --log-format json --access-log
url=https://127.0.0.1:$gw_port
metrics() { curl -s --max-time 5 "http://127.0.0.1:$admin_port/metrics"; }
alive() { kill -0 "$GW_PID" 2>/dev/null; }
failures=()
check() { # description, then a command that must succeed
  local what=$1
  shift
  if "$@"; then log "ok: $what"; else log "FAILED: $what"; failures+=("$what"); fi
}

# RSS every 10 s: "seconds_since_start rss_kib"
rss_start=$(rss_kib "$GW_PID")
t0=$(date +%s)
(
  while alive; do
    echo "$(($(date +%s) - t0)) $(rss_kib "$GW_PID")" >>"$work/rss.txt"
    sleep 10
  done
) &
pids+=($!)

log "soak: ${SOAK_SECONDS}s, $SOAK_CONNS connections, think time ${SOAK_DELAY_MS}ms, guarded call every $SOAK_GUARDED_EVERY"
wrk -t 2 -c "$SOAK_CONNS" -d "${SOAK_SECONDS}s" --timeout 10s -s "$bench_dir/soak.lua" \
  "$url" >"$work/wrk.txt" 2>&1 &
wrk_pid=$!
pids+=("$wrk_pid")

at() { # sleep until fraction $1/100 of the run
  local due=$((t0 + SOAK_SECONDS * $1 / 100)) now
  now=$(date +%s)
  # in the background, so a TERM/INT trap runs at once instead of after the sleep
  if ((due > now)); then sleep $((due - now)) & wait $!; fi
  return 0
}

# -- 25%: policy reload under load
at 25
applied_before=$(metrics | awk '/^vcguard_policy_reloads_total\{result="applied"\}/{print $2}')
cat >"$work/policies/zz-soak-reload.cedar" <<'EOF'
// Added by bench/soak.sh mid-run: a monitor-mode guardrail that never matches the soak's calls.
@id("soak-reload-marker")
@reason("added under load by bench/soak.sh")
@mode("monitor")
forbid (
  principal,
  action == VSphere::Action::"ChangeLockdownMode",
  resource
)
when { context.body.mode == "lockdownStrict" };
EOF
reload_seen() {
  local i v
  for i in $(seq 20); do
    v=$(metrics | awk '/^vcguard_policy_reloads_total\{result="applied"\}/{print $2}')
    ((${v:-0} > ${applied_before:-0})) && return 0
    sleep 0.5
  done
  return 1
}
check "policy reload applied under load (vcguard_policy_reloads_total{result=\"applied\"})" reload_seen
metrics | grep '^vcguard_policy_reloads_total' >"$work/reload-metrics.txt" || true

# -- 40%: simulator down for FAULT_SECONDS, then back on the same port
at 40
touch "$SOAK_FAULT_MARKER"
kill -KILL "$SIM_PID"
wait "$SIM_PID" 2>/dev/null || true
fault_start=$(($(date +%s) - t0))
sleep 1
probe_502() {
  local body code
  body=$(bcurl --max-time 10 -w '\n%{http_code}' -H "vmware-api-session-id: x" "$url$GET_PATH") || return 1
  code=${body##*$'\n'}
  echo "$body" | head -1 >"$work/probe-502.txt"
  [[ $code == 502 ]] && grep -q '"_typeName"' "$work/probe-502.txt"
}
check "gateway answers 502 vim faults while the simulator is down" probe_502
sleep $((FAULT_SECONDS > 1 ? FAULT_SECONDS - 1 : 0))
start_sim "$sim_port"
recovered() {
  local i tok
  for i in $(seq 20); do
    tok=$(login "$url" 2>/dev/null) || tok=
    [[ -n $tok ]] && [[ $(bcurl -o /dev/null -w '%{http_code}' -H "vmware-api-session-id: $tok" "$url$GET_PATH") == 200 ]] && return 0
    sleep 0.5
  done
  return 1
}
check "gateway recovers after the simulator restarts" recovered
sleep 3 # wrk threads log in again (their old sessions died with the simulator)
rm -f "$SOAK_FAULT_MARKER"
fault_end=$(($(date +%s) - t0))

# -- 55%: clients that go away mid-request
at 55
token=$(login "$url")
cut_upload=0 cut_download=0
for i in $(seq 5); do
  rc=0
  head -c $((1024 * 1024 * 1024)) /dev/zero |
    bcurl -o /dev/null --max-time 0.5 -T - -H "vmware-api-session-id: $token" \
      "$url/folder/soak-$i.iso?dcPath=dc1&dsName=ds1" 2>/dev/null || rc=$?
  ((rc == 28)) && cut_upload=$((cut_upload + 1))
  rc=0
  bcurl -o /dev/null --max-time 0.3 -H "vmware-api-session-id: $token" \
    "$url/folder/soak-big.iso?dcPath=dc1&dsName=ds1&size=1073741824" 2>/dev/null || rc=$?
  ((rc == 28)) && cut_download=$((cut_download + 1))
done
log "disconnects: $cut_upload of 5 uploads and $cut_download of 5 downloads cut off mid-body by the client"
still_serving() { [[ $(bcurl -o /dev/null -w '%{http_code}' -H "vmware-api-session-id: $token" "$url$GET_PATH") == 200 ]]; }
check "gateway serves after mid-request disconnects" still_serving

# -- 65%: slowloris
at 65
python3 "$bench_dir/trickle.py" "$gw_port" 5 0.5 40 >"$work/trickle.txt" 2>&1 || true
cat "$work/trickle.txt" >&2
cut_off() { [[ $(grep -c 'closed by gateway' "$work/trickle.txt") == 5 ]] &&
  awk '/^TRICKLE/ { if ($4 + 0 > 8) bad = 1 } END { exit bad }' "$work/trickle.txt"; }
check "slowloris clients cut off within header_read_timeout (5 s) + 3 s" cut_off

wait "$wrk_pid" || true
rss_idle=$(rss_kib "$GW_PID")
gw_alive=no
alive && gw_alive=yes
[[ $gw_alive == yes ]] && check "gateway still serves at the end" still_serving
audit_records=n/a
if [[ -n $GW_AUDIT ]]; then
  # rotated files first (by sequence number), the active file last
  mapfile -t audit_files < <(ls "${GW_AUDIT%.jsonl}"-*.jsonl 2>/dev/null | sort -V)
  audit_files+=("$GW_AUDIT")
  audit_records=$(cat "${audit_files[@]}" | wc -l)
  audit_ok() { "$bin" audit verify "${audit_files[@]}" >"$work/audit-verify.txt" 2>&1; }
  check "audit chain verifies ($audit_records records in ${#audit_files[@]} file(s))" audit_ok
  sed 's/^/  /' "$work/audit-verify.txt" | head -6 >&2
fi

# -- report
cat "$work/wrk.txt" >"$work/wrk-summary.txt"
responses=$(awk '$1=="RESPONSES"{print $2}' "$work/wrk.txt")
requests_line=$(grep ' requests in ' "$work/wrk.txt" | sed 's/^ *//')
unexpected=$(awk '$1=="STATUS" && $2 !~ /^2/ && $3 != "in-fault-window" {s += $NF} END {print s + 0}' "$work/wrk.txt")
explained=$(awk '$1=="STATUS" && $2 !~ /^2/ && $3 == "in-fault-window" && ($2 == 502 || $2 == 504 || ($2 == 500 && $4 == "NotAuthenticated")) {s += $NF} END {print s + 0}' "$work/wrk.txt")
odd_in_window=$(awk '$1=="STATUS" && $2 !~ /^2/ && $3 == "in-fault-window" && !($2 == 502 || $2 == 504 || ($2 == 500 && $4 == "NotAuthenticated")) {s += $NF} END {print s + 0}' "$work/wrk.txt")
sock_errors=$(awk '$1=="SOCKET_ERRORS" {split($0, a, /[= ]/); print a[3] + a[5] + a[7] + a[9]}' "$work/wrk.txt")
unexpected=$((unexpected + odd_in_window + ${sock_errors:-0}))

read -r warm_at warm_rss < <(awk -v w="$warmup" '$1 >= w {print $1, $2; exit}' "$work/rss.txt")
peak_rss=$(awk -v w="$warmup" -v e="$SOAK_SECONDS" '$1 >= w && $1 <= e && $2 > p {p = $2} END {print p + 0}' "$work/rss.txt")
read -r end_at end_rss < <(awk -v e="$SOAK_SECONDS" '$1 <= e {t = $1; v = $2} END {print t, v}' "$work/rss.txt")
growth=$(echo "($end_rss - $warm_rss) * 100 / $warm_rss" | bc -l)
mib() { echo "$1 / 1024" | bc -l; }

echo
echo "== Soak: ${SOAK_SECONDS}s, $SOAK_CONNS connections, think time ${SOAK_DELAY_MS}ms, 1 guarded call per $SOAK_GUARDED_EVERY =="
echo "wrk: $requests_line"
grep -E '^(RESPONSES|LOGINS|GUARDED|SOCKET_ERRORS|LATENCY)' "$work/wrk.txt"
echo "responses by status (wrk side; 'in-fault-window' = simulator down or just restarted, ${fault_start}s..${fault_end}s):"
grep '^STATUS' "$work/wrk.txt" | sort -k2,2n -k3 | sed 's/^STATUS /  /'
echo "non-2xx explained by the injected simulator outage: $explained"
echo "unexpected errors (non-2xx outside the fault window, odd statuses, socket errors): $unexpected"
echo "gateway access log, by status (all clients, including injected ones):"
{ grep -o '"status":[0-9]*' "$work/gw.log" || true; } | sort | uniq -c | sort -k2 | sed 's/^/  /'
echo "  of which the 10 /folder/ transfers cut off by their clients: $({ grep '"request finished"' "$work/gw.log" | grep '/folder/soak' | grep -o '"status":[0-9]*' || true; } | sort | uniq -c | tr -s ' ' | paste -sd, -)"
echo "gateway warnings/errors logged: $(grep -c '"level":"\(WARN\|ERROR\)"' "$work/gw.log" || true)"
{ grep '"level":"\(WARN\|ERROR\)"' "$work/gw.log" | grep -o '"message":"[^"]*"' || true; } | sort | uniq -c | sort -rn | head -8 | sed 's/^/  /'
echo "policy reloads: $(tr '\n' ' ' <"$work/reload-metrics.txt")"
echo "audit records written: $audit_records"
echo "RSS samples (s KiB): $(tr '\n' ',' <"$work/rss.txt" | sed 's/,$//; s/,/, /g')"
printf 'RSS start %.1f MiB, after warm-up (sample at %ds) %.1f MiB, peak under load %.1f MiB, end of load (sample at %ds) %.1f MiB, idle after %.1f MiB\n' \
  "$(mib "$rss_start")" "$warm_at" "$(mib "$warm_rss")" "$(mib "$peak_rss")" "$end_at" "$(mib "$end_rss")" "$(mib "$rss_idle")"
printf 'RSS growth after warm-up (end of load vs warm-up): %+.1f%%\n' "$growth"
read -r post_at post_rss < <(awk -v f=$((SOAK_SECONDS * 75 / 100)) '$1 >= f {print $1, $2; exit}' "$work/rss.txt")
[[ -n ${post_rss:-} && $post_at -le $end_at ]] &&
  printf 'RSS change after the last injected fault (sample at %ds -> end of load): %+.1f%%\n' "$post_at" \
    "$(echo "($end_rss - $post_rss) * 100 / $post_rss" | bc -l)"
echo "gateway process alive at the end: $gw_alive"
((${#failures[@]} == 0)) && echo "checks: all passed" || printf 'checks FAILED: %s\n' "${failures[@]}"

[[ $gw_alive == yes ]] || exit 1
((${#failures[@]} == 0 && unexpected == 0)) || exit 2
