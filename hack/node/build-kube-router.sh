#!/usr/bin/env bash
# Build kube-router from its Go module into the shared binary cache (once; a second run builds
# nothing). Only its network-policy controller is run (hack/node/up.sh): the node's NetworkPolicy
# enforcer. Prints the binary's path.
source "$(dirname "$0")/lib.sh"

target="$KUBE_ROUTER_BIN"
if [[ -x "$target" ]] && "$target" --version 2>&1 | grep -qF "version $KUBE_ROUTER_VERSION,"; then
  echo "$target"
  exit 0
fi
mkdir -p "$(dirname "$target")"
gobin="$(mktemp -d)"
trap 'rm -rf "$gobin"' EXIT
log "building kube-router $KUBE_ROUTER_VERSION (go install, nice -n 10)"
start=$(date +%s)
# The version is stamped the way kube-router's own Makefile does, so --version names it.
GOBIN="$gobin" CGO_ENABLED=0 nice -n 10 go install -trimpath \
  -ldflags "-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION" \
  "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION"
mv "$gobin/kube-router" "$target"
log "kube-router built in $(( $(date +%s) - start )) s: $target"
echo "$target"
