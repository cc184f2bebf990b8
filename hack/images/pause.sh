#!/usr/bin/env bash
# The pod sandbox image, built locally: Kubernetes' own pause.c (from the k8s.io/kubernetes module
# already pinned in hack/go.mod) compiled statically and packed into a one-file image.
# Prints the path of the docker-archive tarball.
source "$(dirname "$0")/lib.sh"

src_dir="$(cd "$REPO_ROOT/hack" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
  | sed -n 's/.*"Dir": "\(.*\)",/\1/p')"
pause_c="$src_dir/build/pause/linux/pause.c"
[[ -f "$pause_c" ]] || die "pause source not found at $pause_c"

key="$(hash_inputs "$pause_c" "$0")"
tarball="$IMAGES_CACHE/pause-$key.tar"
if [[ -s "$tarball" ]]; then echo "$tarball"; exit 0; fi

mkdir -p "$IMAGES_CACHE"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
gcc -Os -static -DVERSION="$K8S_VERSION" -o "$work/pause" "$pause_c"
strip "$work/pause"
ctr_name="$(buildah_ from scratch)"
buildah_ copy "$ctr_name" "$work/pause" /pause >/dev/null
buildah_ config --entrypoint '["/pause"]' --user 65535:65535 "$ctr_name"
buildah_ commit --quiet "$ctr_name" "$SANDBOX_IMAGE" >/dev/null
buildah_ rm "$ctr_name" >/dev/null
buildah_ push --quiet "$SANDBOX_IMAGE" "docker-archive:$tarball.tmp:$SANDBOX_IMAGE"
mv "$tarball.tmp" "$tarball"
find "$IMAGES_CACHE" -maxdepth 1 -name 'pause-*.tar' ! -name "$(basename "$tarball")" -delete
log "pause image $SANDBOX_IMAGE -> $tarball"
echo "$tarball"
