#!/usr/bin/env bash
# The prometheus-operator CRDs (PodMonitor, PrometheusRule) as published in its Go module's source
# (example/prometheus-operator-crd/), fetched once through the Go module proxy into
# ~/.cache/mlserving/prometheus-operator-crds/<version>/. Prints that directory.
set -euo pipefail
VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.78.2}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/mlserving/prometheus-operator-crds/$VERSION"
KINDS=(podmonitors prometheusrules)
if [[ -f "$CACHE/.complete" ]]; then
  echo "$CACHE"
  exit 0
fi
command -v go >/dev/null || { echo "prometheus-operator-crds: Go is needed (go mod download)" >&2; exit 1; }
gopath="$(mktemp -d)"
trap 'chmod -R u+w "$gopath" 2>/dev/null; rm -rf "$gopath"' EXIT
dir="$(GOPATH="$gopath" GOFLAGS=-mod=mod go mod download -json "github.com/prometheus-operator/prometheus-operator@$VERSION" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"
mkdir -p "$CACHE"
for kind in "${KINDS[@]}"; do
  cp "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$CACHE/"
done
touch "$CACHE/.complete"
echo "$CACHE"
