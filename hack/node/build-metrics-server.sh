#!/usr/bin/env bash
# Build metrics-server from its Go module into the binary cache (once per version: the cache path
# carries the version, the build's only input; a second run builds nothing).
source "$(dirname "$0")/lib.sh"

go_install_cached "metrics-server $METRICS_SERVER_VERSION" "$METRICS_SERVER_BIN" \
  "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"
