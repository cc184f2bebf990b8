#!/usr/bin/env bash
# Build Prometheus from its Go module into the shared binary cache (once; a second run builds
# nothing) for the real-node scrape test: Debian's package is built without Kubernetes service
# discovery, which monitoring/prometheus/prometheus.yml needs. Only the Kubernetes discovery is
# compiled in beside the file and HTTP ones Prometheus always has (its remove_all_sd /
# enable_<name>_sd build tags), and the web UI's assets are left out (no builtinassets tag: the
# tests use the HTTP API only). Prints the binary's path; `--path` prints it without building.
source "$(dirname "$0")/node/lib.sh"
# The Go module's v0.3MM.P is Prometheus 3.MM.P.
PROMETHEUS_MODULE_VERSION="${PROMETHEUS_MODULE_VERSION:-v0.316.0}"
PROMETHEUS_BUILD_TAGS="remove_all_sd,enable_kubernetes_sd"
target="$MLS_CACHE/prometheus/$PROMETHEUS_MODULE_VERSION/prometheus"
# The tags are an input of the build too: a binary built with others is rebuilt.
tags_file="$target.tags"

if [[ "${1:-}" != --path ]]; then
  [[ "$(cat "$tags_file" 2>/dev/null)" == "$PROMETHEUS_BUILD_TAGS" ]] || rm -f "$target"
  command -v go >/dev/null || die "building prometheus needs Go on PATH"
  # The version is stamped the way Prometheus's own build does, so --version names it.
  GO_BUILD_NICE=15 GO_BUILD_TAGS="$PROMETHEUS_BUILD_TAGS" go_install_cached \
    "prometheus $PROMETHEUS_MODULE_VERSION (tags $PROMETHEUS_BUILD_TAGS)" "$target" \
    "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_MODULE_VERSION" \
    "-X github.com/prometheus/common/version.Version=$PROMETHEUS_MODULE_VERSION"
  echo "$PROMETHEUS_BUILD_TAGS" >"$tags_file"
fi
echo "$target"
