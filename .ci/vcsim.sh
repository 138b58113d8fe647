#!/usr/bin/env bash
# Builds govmomi's vCenter simulator (tests/vcsim/main.go) to target/vcsim/vcsim, the
# third-party vCenter that tests/thirdparty_vcsim.rs puts behind the gateway. Installs
# Debian's Go and govmomi 0.24.2 sources if they are missing, and builds in GOPATH mode:
# no Go module is downloaded. Debian's package does not ship govc's sources, so no govc.
set -euo pipefail
cd "$(dirname "$0")/.."

GOCODE=/usr/share/gocode
if ! command -v go >/dev/null || [ ! -d "$GOCODE/src/github.com/vmware/govmomi/simulator" ]; then
  echo "== installing golang-go and golang-github-vmware-govmomi-dev"
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    golang-go golang-github-vmware-govmomi-dev
fi

target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target/vcsim"
out="$(cd "$target/vcsim" && pwd)"
echo "== building $out/vcsim ($(go version))"
(cd tests/vcsim && GOPATH="$GOCODE" GO111MODULE=off go build -o "$out/vcsim.tmp" .)
mv "$out/vcsim.tmp" "$out/vcsim"
touch "$out/vcsim" # Go may reuse a cached link with an older time than main.go
echo "built $out/vcsim"
