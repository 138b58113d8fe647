#!/usr/bin/env bash
# A profile-guided release build of vcguard: the same code as `cargo build --release`, laid out
# by the compiler from a profile of the gateway serving representative traffic, so the hot path
# runs with fewer instruction-cache misses and mispredicted branches (BENCHMARKS.md, sixteenth
# session, has its figures). Result: target/pgo/release/vcguard.
#
# Steps: (1) an instrumented build (target/pgo/gen); (2) that build serves, in front of the
# built-in simulator, pass-through VI/JSON reads under wrk at 16 and 1 connections, SOAP
# calls, and guarded calls (maintenance with a ticket, strict lockdown refused); (3) its profile
# is merged with llvm-profdata; (4) the release build uses it (target/pgo/release). Only the
# gateway's own process is profiled; the simulator's counts are discarded.
#
# Usage: bench/pgo-build.sh
# Environment (defaults in brackets):
#   TRAIN_SECS [10]    seconds of wrk load at 16 connections (plus a third of it at 1)
#   LLVM_PROFDATA      llvm-profdata matching rustc's LLVM (default: the rustup component
#                      llvm-tools, else llvm-profdata-<major> from Debian's llvm-<major>)
#   BASE_PORT [28700]  ports BASE..BASE+2 on 127.0.0.1
#   RAW_PROFILES [target/pgo/raw]  where the instrumented gateway writes its raw profiles
# Needs Debian's wrk and curl (installed when missing and run as root).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

TRAIN_SECS=${TRAIN_SECS:-10}
base_port=${BASE_PORT:-28700}
sim_port=$base_port gw_port=$((base_port + 1)) admin_port=$((base_port + 2))
pgo=$repo/target/pgo

# llvm-profdata of rustc's own LLVM major version: older ones cannot read its raw profiles.
find_profdata() {
  local major sysroot candidate
  major=$(rustc -vV | awk '/^LLVM version/{split($3, v, "."); print v[1]}')
  sysroot=$(rustc --print sysroot)
  candidate=$(find "$sysroot/lib/rustlib" -name llvm-profdata -type f 2>/dev/null | head -1)
  if [[ -z $candidate ]] && command -v rustup >/dev/null; then
    rustup component add llvm-tools >/dev/null 2>&1 || true
    candidate=$(find "$sysroot/lib/rustlib" -name llvm-profdata -type f 2>/dev/null | head -1)
  fi
  if [[ -z $candidate ]]; then
    command -v "llvm-profdata-$major" >/dev/null || need_tools "llvm-$major:llvm-profdata-$major"
    candidate=$(command -v "llvm-profdata-$major")
  fi
  echo "$candidate"
}

need_tools wrk:wrk curl:curl openssl:openssl
profdata=${LLVM_PROFDATA:-$(find_profdata)}
[[ -x $profdata ]] || die "no llvm-profdata for rustc's LLVM (set LLVM_PROFDATA)"

raw=${RAW_PROFILES:-$pgo/raw}
rm -rf "$raw" && mkdir -p "$raw"
log "instrumented build (target/pgo/gen)"
(cd "$repo" && RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$raw" \
  cargo build --release --quiet --bin vcguard --target-dir "$pgo/gen") || die "instrumented build failed"
VCGUARD_BIN=$pgo/gen/release/vcguard bench_setup

# The simulator runs the instrumented binary too; its profile goes where it is not merged.
LLVM_PROFILE_FILE=$work/sim-%p.profraw start_sim "$sim_port"
LLVM_PROFILE_FILE=$raw/vcguard-%p.profraw start_gw "$gw_port" "$admin_port" "$sim_port" \
  --policies "$repo/policies"
url=https://127.0.0.1:$gw_port
token=$(login "$url")
[[ -n $token ]] || die "login through the instrumented gateway failed"

log "training: wrk at 16 and 1 connections, SOAP and guarded calls"
wrk -t 2 -c 16 -d "${TRAIN_SECS}s" -H "vmware-api-session-id: $token" "$url$GET_PATH" >/dev/null
wrk -t 1 -c 1 -d "$((TRAIN_SECS / 3 + 1))s" -H "vmware-api-session-id: $token" "$url$GET_PATH" >/dev/null
soap_call() { # body: a SOAP envelope around one call
  printf '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>%s</soapenv:Body></soapenv:Envelope>' "$1"
}
training_config() { # curl config: SOAP reads, guarded calls allowed and refused, on one connection
  local i m content end="output = \"/dev/null\"
write-out = \"%{http_code}\\n\"
cacert = \"$work/gw.pem\""
  content=$(soap_call '<RetrieveServiceContent xmlns="urn:vim25"><_this type="ServiceInstance">ServiceInstance</_this></RetrieveServiceContent>')
  for ((i = 0; i < 200; i++)); do
    printf 'url = "%s/sdk"\nrequest = "POST"\nheader = "Content-Type: text/xml"\n' "$url"
    printf 'header = "SOAPAction: urn:vim25/8.0.3.0"\nheader = "Cookie: vmware_soap_session=\\"%s\\""\n' "$token"
    printf 'data = "%s"\n%s\nnext\n' "${content//\"/\\\"}" "$end"
    for m in EnterMaintenanceMode_Task ExitMaintenanceMode_Task; do
      maintenance_call_config "$url" "$m"
      printf '%s\nnext\n' "$end"
    done
    printf 'url = "%s%s/HostAccessManager/ham-21/ChangeLockdownMode"\n' "$url" "$API"
    printf 'request = "POST"\nheader = "vmware-api-session-id: %s"\n' "$token"
    printf 'header = "Content-Type: application/json"\ndata = "{\\"mode\\":\\"lockdownStrict\\"}"\n'
    printf '%s\nnext\n' "$end"
  done
}
training_config | sed '$d' >"$work/train.cfg"
curl -sS -K "$work/train.cfg" >"$work/train-codes.txt" || true
log "training answers: $(sort "$work/train-codes.txt" | uniq -c | awk '{printf "%s x%s ", $2, $1}')"

# The profile is written when the gateway exits normally (SIGTERM drains and returns from main).
kill -TERM "$GW_PID"
wait "$GW_PID" || true
shopt -s nullglob
profiles=("$raw"/vcguard-*.profraw)
((${#profiles[@]} > 0)) || die "the instrumented gateway wrote no profile"
"$profdata" merge -o "$pgo/vcguard.profdata" "${profiles[@]}"

log "profile-guided build (target/pgo/release)"
(cd "$repo" && RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$pgo/vcguard.profdata" \
  cargo build --release --quiet --bin vcguard --target-dir "$pgo") || die "profile-guided build failed"
log "done: $pgo/release/vcguard"
