#!/usr/bin/env bash
# Where the CPU of a pass-through call goes, on the real CPU: `perf record` (software cpu-clock
# samples, no call graphs) on vcguard and on examples/floor_proxy.rs (the same stack without the
# gateway's work), one after the other under the same wrk load; self time summed by component
# (the kernel, vcguard's own code, mimalloc, memcpy, hyper, tokio, ...) and printed as µs per
# request for both and their difference. Unlike bench/instructions.sh it sees the kernel, cache
# misses and the SHA extensions; like every CPU-time figure it moves with the machine's load, so
# compare the two columns of one run.
#
# Usage: bench/components.sh
# Environment (defaults in brackets):
#   CONNS [16]         wrk connections
#   DURATION [10]      seconds recorded per target, after 2 s of unrecorded load
#   TOP [0]            also list the top N symbols of vcguard by self time
#   VCGUARD_BIN        use this binary instead of `cargo build --release`
#   BASE_PORT [28500]  ports BASE..BASE+3 on 127.0.0.1
# Needs Debian's linux-perf, wrk and python3.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

CONNS=${CONNS:-16}
DURATION=${DURATION:-10}
TOP=${TOP:-0}
base_port=${BASE_PORT:-28500}
sim_port=$base_port gw_port=$((base_port + 1)) admin_port=$((base_port + 2))
floor_port=$((base_port + 3))

need_tools linux-perf:perf wrk:wrk curl:curl openssl:openssl python3:python3
bench_setup
(cd "$repo" && cargo build --release --quiet --example floor_proxy) || die "floor_proxy build failed"
start_sim "$sim_port"
start_gw "$gw_port" "$admin_port" "$sim_port" --policies "$repo/policies"
"$repo/target/release/examples/floor_proxy" "127.0.0.1:$floor_port" "$work/gw.pem" "$work/gw.key" \
  "http://127.0.0.1:$sim_port" >>"$work/floor.log" 2>&1 &
FLOOR_PID=$!
pids+=("$FLOOR_PID")
wait_port "$floor_port" "$FLOOR_PID"
token=$(login "https://127.0.0.1:$gw_port")
[[ -n $token ]] || die "login failed"

# record NAME PID PORT: perf samples of PID while wrk loads PORT; the symbol table goes to $work/NAME.
record() {
  local name=$1 pid=$2 url="https://127.0.0.1:$3$GET_PATH"
  wrk -t"$(wrk_threads "$CONNS")" -c"$CONNS" -d2s -H "vmware-api-session-id: $token" "$url" >/dev/null
  perf record -q -F 4999 -e cpu-clock -p "$pid" -o "$work/$name.data" -- sleep "$DURATION" \
    2>"$work/perf.log" &
  local perf_pid=$!
  sleep 0.3
  wrk -t"$(wrk_threads "$CONNS")" -c"$CONNS" -d"$((DURATION - 1))s" \
    -H "vmware-api-session-id: $token" "$url" >"$work/$name.wrk"
  wait "$perf_pid" || { cat "$work/perf.log" >&2; die "perf record failed"; }
  {
    awk '/requests in/{print "requests", $1}' "$work/$name.wrk"
    perf report -i "$work/$name.data" --no-children --sort sym --stdio -F sample,sym 2>/dev/null |
      grep -E '^ +[0-9]+ '
  } >"$work/$name.symbols"
  log "$name: $(grep Requests/sec "$work/$name.wrk" | tr -s ' ')"
}

log "perf on vcguard, then on the floor proxy, ${DURATION}s each at c=$CONNS"
record vcguard "$GW_PID" "$gw_port"
record floor "$FLOOR_PID" "$floor_port"

echo "== CPU per pass-through call by component (self time, µs per request, c=$CONNS) =="
python3 - "$work/vcguard.symbols" "$work/floor.symbols" "$TOP" <<'EOF'
import collections, re, sys

SAMPLE_US = 1e6 / 4999
# First match wins; a symbol is a function after inlining, so inlined library code counts
# where it was inlined (mostly under "vcguard").
COMPONENTS = [
    ("kernel", lambda s, k: k == "k"),
    ("memcpy/memcmp", lambda s, k: re.search(r"__mem(move|cpy|set|cmp)", s)),
    ("mimalloc", lambda s, k: s.startswith(("_mi_", "mi_"))),
    ("clock_gettime", lambda s, k: "clock_gettime" in s or s == "read_tsc"),
    ("sha2", lambda s, k: "sha2::" in s),
    ("rustls + aws-lc", lambda s, k: "rustls" in s or "aws_lc" in s),
    ("hyper-util", lambda s, k: "hyper_util" in s),
    ("hyper + httparse", lambda s, k: "hyper::" in s or "<hyper" in s or "httparse" in s),
    ("tokio", lambda s, k: "tokio::" in s or "<tokio" in s),
    ("serde_json", lambda s, k: "serde" in s),
    ("vcguard", lambda s, k: "vcguard::" in s),
    ("tower, tower-http", lambda s, k: "tower" in s),
    ("http (headers, URIs)", lambda s, k: re.search(r"(^|[<\s])http::", s)),
    ("bytes", lambda s, k: "bytes::" in s),
    ("core::fmt", lambda s, k: "fmt::" in s),
]

def load(path):
    lines = open(path).read().splitlines()
    requests = int(lines[0].split()[1])
    by_component, by_symbol = collections.Counter(), collections.Counter()
    for line in lines[1:]:
        m = re.match(r"\s*(\d+)\s+\[(.)\]\s+(.*?)\s*$", line)
        if not m:
            continue
        samples, kind, symbol = int(m.group(1)), m.group(2), m.group(3)
        name = next((c for c, test in COMPONENTS if test(symbol, kind)), "other")
        by_component[name] += samples
        by_symbol[symbol] += samples
    per_request = lambda n: n * SAMPLE_US / requests
    return per_request, by_component, by_symbol

vcg, vcg_components, vcg_symbols = load(sys.argv[1])
floor, floor_components, _ = load(sys.argv[2])
names = sorted(set(vcg_components) | set(floor_components),
               key=lambda c: vcg(vcg_components[c]) - floor(floor_components[c]), reverse=True)
print(f"{'component':22} {'vcguard':>9} {'floor':>9} {'vcg-floor':>10}")
for name in names:
    v, f = vcg(vcg_components[name]), floor(floor_components[name])
    print(f"{name:22} {v:9.2f} {f:9.2f} {v - f:10.2f}")
v, f = vcg(sum(vcg_components.values())), floor(sum(floor_components.values()))
print(f"{'all':22} {v:9.2f} {f:9.2f} {v - f:10.2f}")
top = int(sys.argv[3])
if top:
    print(f"== vcguard's top {top} symbols by self time (µs per request) ==")
    for symbol, samples in vcg_symbols.most_common(top):
        print(f"{vcg(samples):6.2f}  {symbol[:140]}")
EOF
