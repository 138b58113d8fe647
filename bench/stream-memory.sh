#!/usr/bin/env bash
# Measures the gateway's resident memory while a large body streams through it, both ways.
# Usage: bench/stream-memory.sh [SIZE_MIB]   (default 1024: a 1 GiB upload and a 1 GiB download)
# The simulator and the gateway run as separate release processes on loopback; only the
# gateway's RSS is sampled (from /proc, every 100 ms).
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
size=$((size_mib * 1024 * 1024))

cargo build --release --quiet
bin=target/release/vcguard
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -keyout "$work/gw.key" -out "$work/gw.pem" -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost 2>/dev/null

"$bin" sim --plain --listen 127.0.0.1:18989 >"$work/sim.log" 2>&1 & pids+=($!)
"$bin" serve --listen 127.0.0.1:18443 --admin-listen 127.0.0.1:19090 \
  --cert "$work/gw.pem" --key "$work/gw.key" --upstream http://127.0.0.1:18989 \
  >"$work/gw.log" 2>&1 & gw=$!; pids+=($gw)
for _ in $(seq 100); do curl -sf http://127.0.0.1:19090/readyz >/dev/null && break; sleep 0.1; done

base=https://localhost:18443
curl_gw() { curl -sS --cacert "$work/gw.pem" --resolve localhost:18443:127.0.0.1 "$@"; }
token=$(curl_gw -D - -o /dev/null -X POST -H 'Content-Type: application/json' \
  -d '{"userName":"administrator@vsphere.local","password":"VMware1!"}' \
  "$base/sdk/vim25/8.0.3.0/SessionManager/SessionManager/Login" |
  awk -F': ' 'tolower($1)=="vmware-api-session-id"{print $2}' | tr -d '\r')

rss_kib() { awk '/^VmRSS/{print $2}' "/proc/$gw/status"; }
sample() { local peak=0 v; while kill -0 "$gw" 2>/dev/null; do v=$(rss_kib); ((v > peak)) && peak=$v; echo "$peak" >"$work/peak"; sleep 0.1; done; }

warm=$(rss_kib)
sample & sampler=$!; pids+=($sampler)
start=$(date +%s.%N)
head -c "$size" /dev/zero | curl_gw -o "$work/up.json" -T - -H "vmware-api-session-id: $token" \
  "$base/folder/big.iso?dcPath=dc1&dsName=ds1"
up_end=$(date +%s.%N)
up_peak=$(cat "$work/peak")
curl_gw -o /dev/null -H "vmware-api-session-id: $token" \
  "$base/folder/big.iso?dcPath=dc1&dsName=ds1&size=$size"
down_end=$(date +%s.%N)
down_peak=$(cat "$work/peak")
kill "$sampler" 2>/dev/null || true

echo "stored by the simulator: $(cat "$work/up.json")"
printf 'gateway RSS before: %d KiB\n' "$warm"
printf 'upload   %d MiB in %.1f s: peak RSS %d KiB (+%d KiB)\n' "$size_mib" "$(echo "$up_end - $start" | bc)" "$up_peak" $((up_peak - warm))
printf 'download %d MiB in %.1f s: peak RSS %d KiB (+%d KiB)\n' "$size_mib" "$(echo "$down_end - $up_end" | bc)" "$down_peak" $((down_peak - warm))
