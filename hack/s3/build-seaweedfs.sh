#!/usr/bin/env bash
# Build SeaweedFS (the S3-compatible store the storage tests run against) from its Go module into
# ~/.cache/mlserving/seaweedfs/<version>/weed, once per version: a second run builds nothing.
# `go install pkg@version` refuses modules with replace directives, so the build runs inside a
# throw-away module that requires SeaweedFS (its replace directives only matter to its own build).
set -euo pipefail
SEAWEEDFS_VERSION="${SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"
MLS_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/mlserving"
SEAWEEDFS_BIN="${SEAWEEDFS_BIN:-$MLS_CACHE/seaweedfs/$SEAWEEDFS_VERSION/weed}"
log() { echo "build-seaweedfs: $*" >&2; }

if [[ -x "$SEAWEEDFS_BIN" ]]; then
  echo "$SEAWEEDFS_BIN"
  exit 0
fi
mkdir -p "$(dirname "$SEAWEEDFS_BIN")"
start=$(date +%s)
log "building seaweedfs $SEAWEEDFS_VERSION (nice -n 15)"
if GOBIN="$(dirname "$SEAWEEDFS_BIN")" CGO_ENABLED=0 nice -n 15 go install -trimpath -ldflags '-s -w' \
    "github.com/seaweedfs/seaweedfs/weed@$SEAWEEDFS_VERSION" 2>"$MLS_CACHE/seaweedfs/install.log"; then
  :
else
  log "go install refused ($(tail -1 "$MLS_CACHE/seaweedfs/install.log")); building from a module download"
  work="$MLS_CACHE/seaweedfs/$SEAWEEDFS_VERSION.src"
  mkdir -p "$work"
  src="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  rm -rf "$work/tree" && cp -r "$src" "$work/tree" && chmod -R u+w "$work/tree"
  (cd "$work/tree" && CGO_ENABLED=0 nice -n 15 go build -trimpath -ldflags '-s -w' -o "$SEAWEEDFS_BIN.tmp" ./weed)
  mv "$SEAWEEDFS_BIN.tmp" "$SEAWEEDFS_BIN"
  rm -rf "$work"  # the module cache and Go's build cache keep what a rebuild needs
fi
log "seaweedfs built in $(( $(date +%s) - start )) s: $SEAWEEDFS_BIN"
echo "$SEAWEEDFS_BIN"
