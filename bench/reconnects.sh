#!/usr/bin/env bash
# How often vcguard opens a new connection to vCenter under steady pass-through load: the
# machine's TCP connects (ActiveOpens in /proc/net/snmp) during a wrk run through the gateway, less
# wrk's own. A pool that keeps what its calls give back opens none once warm.
#
# Usage: bench/reconnects.sh
# Environment (defaults in brackets):
#   CONNS [128]        wrk connections
#   DURATION [8]       seconds measured, after 2 s of unmeasured warm-up
#   VCGUARD_BIN        use this binary instead of `cargo build --release`
#   GW_CONFIG          a vcguard TOML file (e.g. another [upstream] pool_max_idle)
#   BASE_PORT [28900]  ports BASE..BASE+2 on 127.0.0.1
set -euo pipefail
source "$(dirname "$0")/lib.sh"

CONNS=${CONNS:-128}
DURATION=${DURATION:-8}
base_port=${BASE_PORT:-28900}
sim_port=$base_port gw_port=$((base_port + 1)) admin_port=$((base_port + 2))

need_tools wrk:wrk curl:curl openssl:openssl
bench_setup
start_sim "$sim_port"
start_gw "$gw_port" "$admin_port" "$sim_port" --policies "$repo/policies"
url=https://127.0.0.1:$gw_port
token=$(login "$url")
[[ -n $token ]] || die "login failed"

active_opens() { awk '/^Tcp:/ && ++n == 2 {print $6}' /proc/net/snmp; }
load() { wrk -t 2 -c "$CONNS" -d "$1" -H "vmware-api-session-id: $token" "$url$GET_PATH"; }

load 2s >/dev/null 2>&1
before=$(active_opens)
load "${DURATION}s" >"$work/wrk.txt" 2>&1
after=$(active_opens)
read -r rps _ _ non2xx sock reqs < <(parse_wrk "$work/wrk.txt")
upstream=$(ss -Htn state established "( dport = :$sim_port )" | wc -l)
echo "== connections opened during ${DURATION}s of wrk at $CONNS connections (pass-through GET) =="
echo "load: $reqs requests, $rps req/s, non-2xx $non2xx, socket errors $sock"
echo "TCP connects: $((after - before)) in all, $CONNS of them wrk's own: $((after - before - CONNS)) to vCenter"
echo "connections to vCenter open at the end: $upstream"
