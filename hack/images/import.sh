#!/usr/bin/env bash
# import.sh TARBALL REF: load a docker-archive into the node's containerd (k8s.io namespace, where
# the kubelet's CRI looks), unless this very tarball was the last one imported under REF.
source "$(dirname "$0")/lib.sh"

tarball="$1" ref="$2"
marker="$NODE_STATE/imported/$(echo "$ref" | tr '/:' '__')"
[[ -S "$CONTAINERD_SOCK" ]] || die "containerd of the real node is not running ($CONTAINERD_SOCK)"
if [[ -f "$marker" && "$(cat "$marker")" == "$(basename "$tarball")" ]] && ctr_k8s image ls -q | grep -qx "$ref"; then
  exit 0
fi
start=$(date +%s)
ctr_k8s image import "$tarball" >/dev/null
ctr_k8s image ls -q | grep -qx "$ref" || die "imported $tarball but containerd has no image $ref"
mkdir -p "$(dirname "$marker")"
basename "$tarball" >"$marker"
log "imported $ref into containerd in $(( $(date +%s) - start )) s"
