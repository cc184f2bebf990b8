#!/usr/bin/env bash
# Build CoreDNS from its Go module into the shared binary cache (once; a second run builds nothing).
source "$(dirname "$0")/lib.sh"

target="$K8S_BIN/coredns"
if [[ -x "$target" ]] && ! "$target" -version 2>/dev/null | grep -q "CoreDNS-${COREDNS_VERSION#v}"; then
  rm -f "$target"  # another version: rebuild
fi
go_install_cached "CoreDNS $COREDNS_VERSION" "$target" "github.com/coredns/coredns@$COREDNS_VERSION"
