#!/usr/bin/env bash
# Helm, built from its Go module into the binary cache (no release download).
#
#   hack/helm.sh build   build (or reuse) ~/.cache/mlserving/helm/<version>/bin/helm
#   hack/helm.sh path    print that path (whether or not it is built yet)
#
# The cache path carries the pinned version, the build's only input: a second build builds nothing.
source "$(dirname "$0")/node/lib.sh"

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
HELM_BIN="$MLS_CACHE/helm/$HELM_VERSION/bin/helm"

case "${1:-}" in
  build)
    [[ -x "$HELM_BIN" ]] && exit 0
    command -v go >/dev/null || die "building helm needs Go (go.dev/dl) on PATH"
    # What Helm's Makefile stamps in: its version (`go install` alone reports "v3.22") and the
    # Kubernetes version of its client-go (else `helm template` and `helm lint` assume v1.20).
    gomod="$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | python3 -c 'import json, sys; print(json.load(sys.stdin)["GoMod"])')"
    k8s_minor="$(awk '$1 == "k8s.io/client-go" {split($2, v, "."); print v[2]; exit}' "$gomod")"
    [[ "$k8s_minor" =~ ^[0-9]+$ ]] || die "no k8s.io/client-go version in $gomod"
    ldflags="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    for pkg in pkg/lint/rules pkg/chartutil; do
      ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$k8s_minor"
    done
    GO_BUILD_NICE=15 go_install_cached "helm $HELM_VERSION" "$HELM_BIN" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" "$ldflags"
    ;;
  path) echo "$HELM_BIN" ;;
  *) echo "usage: hack/helm.sh build|path" >&2; exit 2 ;;
esac
