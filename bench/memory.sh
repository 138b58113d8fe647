#!/usr/bin/env bash
# vcguard's resident memory: (1) peak RSS while 1,000 keep-alive TLS connections send pass-through
# GETs (and, for context, nginx's under the same load); (2) the 1 GiB streamed upload/download
# figure from bench/stream-memory.sh.
#
# Usage: bench/memory.sh
# Environment (defaults in brackets):
#   CONNS [1000]      concurrent keep-alive connections
#   DURATION [10]     seconds of load
#   STREAM_MIB [1024] size for bench/stream-memory.sh; 0 skips it
#   VCGUARD_BIN       use this binary instead of `cargo build --release` (stream-memory.sh always
#                     builds and runs the repository's own target/release/vcguard)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

CONNS=${CONNS:-1000}
DURATION=${DURATION:-10}
STREAM_MIB=${STREAM_MIB:-1024}
NGINX=${NGINX:-1}
base_port=${BASE_PORT:-28100}
sim_port=$base_port gw_port=$((base_port + 1)) admin_port=$((base_port + 2)) ngx_port=$((base_port + 3))

need_tools wrk:wrk curl:curl openssl:openssl bc:bc
((NGINX == 0)) || need_tools nginx:nginx
bench_setup
(($(ulimit -n) >= CONNS * 2 + 100)) || die "ulimit -n $(ulimit -n) is too low for $CONNS connections"

start_sim "$sim_port"
start_gw "$gw_port" "$admin_port" "$sim_port" --policies "$repo/policies"
url=https://127.0.0.1:$gw_port
token=$(login "$url")
[[ -n $token ]] || die "login failed"

rss_start=$(rss_kib "$GW_PID")
# A short warm-up at low concurrency, so the figure below is what the connections add.
wrk -t 2 -c 16 -d 2s -H "vmware-api-session-id: $token" "$url$GET_PATH" >/dev/null 2>&1
rss_warm=$(rss_kib "$GW_PID")

sampler() { # peak VmRSS every 100 ms, and the open-connections gauge, until stopped
  local peak=0 v open
  while :; do
    v=$(rss_kib "$GW_PID")
    ((v > peak)) && peak=$v && echo "$peak" >"$work/peak"
    open=$(curl -s "http://127.0.0.1:$admin_port/metrics" | awk '$1=="vcguard_open_connections"{print $2}')
    [[ -n $open ]] && echo "$open" >>"$work/open"
    sleep 0.1
  done
}
echo 0 >"$work/peak"
sampler &
sampler_pid=$!
pids+=("$sampler_pid")
wrk -t 2 -c "$CONNS" -d "${DURATION}s" --timeout 10s --latency \
  -H "vmware-api-session-id: $token" "$url$GET_PATH" >"$work/wrk-$CONNS.txt" 2>&1
kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
read -r rps p50 p99 non2xx sock reqs < <(parse_wrk "$work/wrk-$CONNS.txt")
hwm=$(rss_kib "$GW_PID" VmHWM)
rss_after=$(rss_kib "$GW_PID")
anon_after=$(rss_kib "$GW_PID" RssAnon)
file_after=$(rss_kib "$GW_PID" RssFile)
peak=$(cat "$work/peak")
open_max=$(sort -n "$work/open" | tail -1)
kill -0 "$GW_PID" 2>/dev/null || die "vcguard died under $CONNS connections"

echo "== vcguard RSS with $CONNS concurrent keep-alive TLS connections (wrk, ${DURATION}s, pass-through GET) =="
printf 'RSS at start:                 %7d KiB (%.1f MiB)\n' "$rss_start" "$(echo "$rss_start / 1024" | bc -l)"
printf 'RSS after warm-up (16 conns): %7d KiB (%.1f MiB)\n' "$rss_warm" "$(echo "$rss_warm / 1024" | bc -l)"
printf 'peak RSS sampled (100 ms):    %7d KiB (%.1f MiB)\n' "$peak" "$(echo "$peak / 1024" | bc -l)"
printf 'VmHWM (kernel high-water):    %7d KiB (%.1f MiB)\n' "$hwm" "$(echo "$hwm / 1024" | bc -l)"
printf 'RSS after the load:           %7d KiB (%.1f MiB)\n' "$rss_after" "$(echo "$rss_after / 1024" | bc -l)"
printf '  of which heap etc. (RssAnon) %7d KiB, binary and libraries (RssFile) %d KiB\n' "$anon_after" "$file_after"
echo "most client connections open at once (vcguard_open_connections): ${open_max:-?}"
echo "load: $reqs requests, $rps req/s, p50 ${p50}us, p99 ${p99}us, non-2xx $non2xx, socket errors $sock"

if ((NGINX != 0)); then
  # Same load through nginx (a fresh master and workers): the sum over its processes of RSS
  # (shared pages counted in each) and of PSS (shared pages split), sampled every 100 ms.
  start_nginx "$ngx_port" "$sim_port"
  ngx_mem() { # prints "rss_kib pss_kib" summed over master and workers
    local p r=0 s=0 v
    for p in "$NGX_PID" $(pgrep -P "$NGX_PID"); do
      v=$(rss_kib "$p")
      r=$((r + ${v:-0}))
      v=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null)
      s=$((s + ${v:-0}))
    done
    echo "$r $s"
  }
  read -r ngx_rss_start ngx_pss_start < <(ngx_mem)
  (
    peak_r=0 peak_s=0
    while :; do
      read -r r s < <(ngx_mem)
      ((r > peak_r)) && peak_r=$r
      ((s > peak_s)) && peak_s=$s
      echo "$peak_r $peak_s" >"$work/ngx-peak"
      sleep 0.1
    done
  ) &
  ngx_sampler=$!
  pids+=("$ngx_sampler")
  wrk -t 2 -c "$CONNS" -d "${DURATION}s" --timeout 10s --latency \
    -H "vmware-api-session-id: $token" "https://127.0.0.1:$ngx_port$GET_PATH" >"$work/wrk-nginx.txt" 2>&1
  kill "$ngx_sampler" 2>/dev/null || true
  wait "$ngx_sampler" 2>/dev/null || true
  read -r ngx_peak_rss ngx_peak_pss <"$work/ngx-peak"
  read -r rps p50 p99 non2xx sock reqs < <(parse_wrk "$work/wrk-nginx.txt")
  echo
  echo "== for context: nginx ($(nproc) workers) under the same load =="
  printf 'at start: RSS sum %d KiB, PSS sum %d KiB; peak: RSS sum %d KiB (%.1f MiB), PSS sum %d KiB (%.1f MiB)\n' \
    "$ngx_rss_start" "$ngx_pss_start" "$ngx_peak_rss" "$(echo "$ngx_peak_rss / 1024" | bc -l)" \
    "$ngx_peak_pss" "$(echo "$ngx_peak_pss / 1024" | bc -l)"
  echo "load: $reqs requests, $rps req/s, p50 ${p50}us, p99 ${p99}us, non-2xx $non2xx, socket errors $sock"
fi

if ((STREAM_MIB > 0)); then
  echo
  echo "== bench/stream-memory.sh $STREAM_MIB =="
  # stream-memory.sh starts vcguard without --audit, so a build with the audit log writes
  # vcguard-audit.jsonl into the repository root: remove it if this run created it.
  stray=$repo/vcguard-audit.jsonl
  [[ -e $stray ]] && had_stray=1 || had_stray=0
  "$bench_dir/stream-memory.sh" "$STREAM_MIB" | tee "$work/stream.txt"
  ((had_stray)) || rm -f "$stray"
  awk -F'[(+ ]+' '/peak RSS/ {
      for (i = 1; i <= NF; i++) if ($i == "KiB)") d = $(i - 1)
      printf "%s: RSS grew %.1f MiB over the idle gateway (target: within 8 MiB)\n", $1, d / 1024
    }' "$work/stream.txt"
fi
