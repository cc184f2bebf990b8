#!/usr/bin/env bash
# The local base image: a minimal Debian bookworm with python3 and python3-venv, made by debootstrap
# (no registry needed) and imported into buildah's store. Cached by a hash of its inputs.
# Prints the image name to pass as --build-arg BASE_IMAGE=...
source "$(dirname "$0")/lib.sh"

SUITE=bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
INCLUDE="python3,python3-venv,ca-certificates"
RECIPE=1   # bump when the debootstrap/trim steps below change, to invalidate the cache

key="$(printf '%s\n' "$SUITE" "$MIRROR" "$INCLUDE" "$RECIPE" | sha256sum | cut -c1-16)"
image="localhost/mlserving/base:$SUITE-$key"

if buildah_ inspect --type image "$image" >/dev/null 2>&1; then echo "$image"; exit 0; fi

mkdir -p "$IMAGES_CACHE"
tarball="$IMAGES_CACHE/base-$SUITE-$key.tar"
if [[ ! -s "$tarball" ]]; then
  rootfs="$(mktemp -d)"
  trap 'rm -rf "$rootfs"' EXIT
  log "debootstrap $SUITE ($INCLUDE) from $MIRROR"
  start=$(date +%s)
  nice -n 10 debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$rootfs" "$MIRROR" \
    >"$IMAGES_CACHE/debootstrap.log" 2>&1 || die "debootstrap failed, see $IMAGES_CACHE/debootstrap.log"
  # Trim what an image never needs: apt lists, caches, docs.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
  tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  log "base rootfs in $(( $(date +%s) - start )) s: $tarball ($(du -h "$tarball" | cut -f1))"
fi

ctr_name="$(buildah_ from scratch)"
buildah_ add --quiet "$ctr_name" "$tarball" / >/dev/null
buildah_ config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env LANG=C.UTF-8 --cmd /bin/bash "$ctr_name"
buildah_ commit --quiet "$ctr_name" "$image" >/dev/null
buildah_ rm "$ctr_name" >/dev/null
log "base image $image"
echo "$image"
