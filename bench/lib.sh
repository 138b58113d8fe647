# Shared helpers for bench/compare.sh, bench/memory.sh and bench/soak.sh. Sourced, not run.
# Everything listens on 127.0.0.1 only; every process started through these helpers is
# recorded in `pids` and stopped by `cleanup` (installed as an EXIT trap by `bench_setup`).

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$bench_dir")
API=/sdk/vim25/8.0.3.0
LOGIN_BODY='{"userName":"administrator@vsphere.local","password":"VMware1!"}'
GET_PATH=$API/HostSystem/host-21/name

pids=()
work=

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [[ -n $work && -z ${KEEP_WORK:-} ]] && rm -rf "$work"
  return 0
}

# Installs the Debian packages whose command is missing. Arguments: package:command ...
need_tools() {
  local pc missing=()
  for pc in "$@"; do command -v "${pc#*:}" >/dev/null || missing+=("${pc%%:*}"); done
  ((${#missing[@]} == 0)) && return 0
  [[ $(id -u) == 0 ]] || die "missing ${missing[*]}: install them or run as root"
  log "installing ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Temp dir, EXIT trap, raised fd limit, a copy of the vcguard binary (so a rebuild of the
# shared target dir cannot swap it mid-run) and a throwaway P-256 certificate for localhost.
# VCGUARD_BIN=path skips the build.
bench_setup() {
  work=$(mktemp -d /tmp/vcguard-bench.XXXXXX)
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  local src=${VCGUARD_BIN:-}
  if [[ -z $src ]]; then
    log "cargo build --release"
    (cd "$repo" && cargo build --release --quiet) || die "build failed"
    src=$repo/target/release/vcguard
  fi
  cp "$src" "$work/vcguard"
  bin=$work/vcguard
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -keyout "$work/gw.key" -out "$work/gw.pem" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
}

# Waits until 127.0.0.1:$1 accepts connections; fails if process $2 died meanwhile.
wait_port() {
  local port=$1 pid=$2 i
  for i in $(seq 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || die "process $pid exited before listening on $port"
    sleep 0.1
  done
  die "nothing listening on $port after 15 s"
}

# start_sim PORT: the simulator, plain HTTP. Sets SIM_PID.
start_sim() {
  "$bin" sim --plain --listen "127.0.0.1:$1" >>"$work/sim.log" 2>&1 &
  SIM_PID=$!
  pids+=("$SIM_PID")
  wait_port "$1" "$SIM_PID"
}

# start_gw PORT ADMIN_PORT SIM_PORT [extra serve args...]: vcguard. Sets GW_PID and GW_AUDIT.
# GW_RUST_LOG sets RUST_LOG for it (default: unset, i.e. as shipped: info without the per-request
# line; the audit log holds the per-call record, like nginx's access log).
# The audit log (on by default since it landed) goes to the temp dir, not the current directory.
start_gw() {
  local port=$1 admin=$2 sim=$3 audit=()
  shift 3
  GW_AUDIT=
  if "$bin" serve --help | grep -q -- '--audit'; then
    GW_AUDIT=$work/audit-$port.jsonl
    audit=(--audit "$GW_AUDIT")
  fi
  local logenv=() config=()
  [[ -n ${GW_RUST_LOG:-} ]] && logenv=(RUST_LOG="$GW_RUST_LOG")
  [[ -n ${GW_CONFIG:-} ]] && config=(--config "$GW_CONFIG")
  env -u RUST_LOG "${logenv[@]}" "$bin" serve "${config[@]}" --listen "127.0.0.1:$port" \
    --admin-listen "127.0.0.1:$admin" --cert "$work/gw.pem" --key "$work/gw.key" \
    --upstream "http://127.0.0.1:$sim" "${audit[@]}" "$@" >>"$work/gw.log" 2>&1 &
  GW_PID=$!
  pids+=("$GW_PID")
  local i
  for i in $(seq 150); do
    curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null && return 0
    kill -0 "$GW_PID" 2>/dev/null || { tail -5 "$work/gw.log" >&2; die "vcguard exited at start"; }
    sleep 0.1
  done
  die "vcguard not ready after 15 s"
}

# start_nginx PORT SIM_PORT: nginx from bench/nginx.conf, worker_processes = nproc (= vcguard's
# tokio worker threads). Sets NGX_PID (the master; the workers are its children).
start_nginx() {
  mkdir -p "$work"/nginx-{body,proxy,fastcgi,uwsgi,scgi}
  sed -e "s|@WORKERS@|$(nproc)|" -e "s|@WORK@|$work|g" -e "s|@PORT@|$1|" \
    -e "s|@SIM_PORT@|$2|" "$bench_dir/nginx.conf" >"$work/nginx.conf"
  nginx -t -c "$work/nginx.conf" 2>"$work/nginx-test.log" || { cat "$work/nginx-test.log" >&2; die "bad nginx.conf"; }
  nginx -c "$work/nginx.conf" &
  NGX_PID=$!
  pids+=("$NGX_PID")
  wait_port "$1" "$NGX_PID"
}

# curl against any target: https URLs are checked against the throwaway certificate.
bcurl() { curl -sS --cacert "$work/gw.pem" "$@"; }

# login BASE_URL: logs in and prints the session token.
login() {
  bcurl -D - -o /dev/null -X POST -H 'Content-Type: application/json' -d "$LOGIN_BODY" \
    "$1$API/SessionManager/SessionManager/Login" |
    awk -F': ' 'tolower($1)=="vmware-api-session-id"{print $2}' | tr -d '\r'
}

# maintenance_call_config BASE_URL METHOD: the curl config lines of a guarded VI/JSON call METHOD
# (Enter/ExitMaintenanceMode_Task) on host-21 with a change ticket, as session $token; the caller
# adds its output options and `next`.
maintenance_call_config() {
  printf 'url = "%s%s/HostSystem/host-21/%s"\nrequest = "POST"\n' "$1" "$API" "$2"
  printf 'header = "vmware-api-session-id: %s"\nheader = "Content-Type: application/json"\n' "$token"
  printf 'header = "X-Change-Ticket: CHG0012345"\ndata = "{\\"timeout\\":0}"\n'
}

# rss_kib PID [VmRSS|VmHWM]
rss_kib() { awk -v k="${2:-VmRSS}:" '$1==k{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# wrk threads for C connections: at most 2 (the machine's cores), never more than C.
wrk_threads() { (($1 < 2)) && echo "$1" || echo 2; }

# parse_wrk FILE: prints "rps p50_us p99_us non2xx socket_errors requests" from `wrk --latency` output.
parse_wrk() {
  awk '
    function us(v) {
      if (v ~ /us$/) return v + 0
      if (v ~ /ms$/) return v * 1000
      if (v ~ /m$/)  return v * 60e6
      if (v ~ /s$/)  return v * 1e6
      return v + 0
    }
    /Latency Distribution/ { dist = 1; next }
    dist && $1 == "50%" { p50 = us($2) }
    dist && $1 == "99%" { p99 = us($2); dist = 0 }
    / requests in / { reqs = $1 }
    /Non-2xx or 3xx responses:/ { non2xx = $NF }
    /Socket errors:/ { gsub(",", ""); sock = $4 + $6 + $8 + $10 }
    /^Requests\/sec:/ { rps = $2 }
    END { printf "%.0f %.0f %.0f %d %d %d\n", rps, p50, p99, non2xx, sock, reqs }
  ' "$1"
}

# median of the numbers on stdin (one per line)
median() { sort -g | awk '{v[NR] = $1} END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# CPU accounting, to tell whether something else on this shared machine competed with a run.
# cpu_snapshot PID...: prints "machine_total machine_busy ours" in jiffies; ours = the given
# processes plus this shell's waited-for children (wrk, once it has exited).
cpu_snapshot() {
  local ours=0 p v
  for p in "$@" $$; do
    v=$(awk '{sub(/.*\) /, ""); print $12 + $13 + $14 + $15}' "/proc/$p/stat" 2>/dev/null) || v=0
    ours=$((ours + ${v:-0}))
  done
  awk -v ours="$ours" '/^cpu /{t = 0; for (i = 2; i <= NF; i++) t += $i; print t, t - $5 - $6, ours}' /proc/stat
}
# foreign_pct "SNAPSHOT_BEFORE" "SNAPSHOT_AFTER": % of the machine's CPU used by other processes.
foreign_pct() {
  local t0 b0 o0 t1 b1 o1
  read -r t0 b0 o0 <<<"$1"
  read -r t1 b1 o1 <<<"$2"
  echo "x = ($b1 - $b0 - ($o1 - $o0)) * 100 / ($t1 - $t0); if (x < 0) x = 0; scale = 0; x / 1" | bc -l
}
# wait_quiet: before a measurement, waits (up to QUIET_WAIT s, default 120) until other processes
# use under QUIET_BUSY % (default 10) of the machine over one second. Our servers are idle then.
wait_quiet() {
  local deadline=$(($(date +%s) + ${QUIET_WAIT:-120})) a b busy
  while :; do
    a=$(cpu_snapshot)
    sleep 1
    b=$(cpu_snapshot)
    busy=$(foreign_pct "$a" "$b")
    ((busy < ${QUIET_BUSY:-10})) && return 0
    if (($(date +%s) >= deadline)); then
      log "warning: machine still ${busy}% busy with other processes; measuring anyway"
      return 0
    fi
    sleep 2
  done
}
# proc_jiffies PID...: user+system CPU of these processes, in jiffies (1/100 s).
proc_jiffies() {
  local s=0 p v
  for p in "$@"; do
    v=$(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null) || v=0
    s=$((s + ${v:-0}))
  done
  echo "$s"
}
