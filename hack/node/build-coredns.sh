#!/usr/bin/env bash
# Build CoreDNS from its Go module into the shared binary cache (once; a second run builds nothing).
source "$(dirname "$0")/lib.sh"

target="$K8S_BIN/coredns"
if [[ -x "$target" ]] && "$target" -version 2>/dev/null | grep -q "CoreDNS-${COREDNS_VERSION#v}"; then
  exit 0
fi
mkdir -p "$K8S_BIN"
gobin="$(mktemp -d)"
trap 'rm -rf "$gobin"' EXIT
log "building CoreDNS $COREDNS_VERSION (go install, nice -n 10)"
start=$(date +%s)
GOBIN="$gobin" CGO_ENABLED=0 nice -n 10 go install -trimpath -ldflags '-s -w' \
  "github.com/coredns/coredns@$COREDNS_VERSION"
mv "$gobin/coredns" "$target"
log "CoreDNS built in $(( $(date +%s) - start )) s: $target"
