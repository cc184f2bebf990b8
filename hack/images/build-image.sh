#!/usr/bin/env bash
# build-image.sh --tag REF --file DOCKERFILE [--target STAGE] [--context DIR] [--build-arg K=V]... [--import]
# Builds a real Dockerfile (its last stage, or --target STAGE) with buildah on the local base image
# (BASE_IMAGE build arg, no registry),
# exports a docker-archive tarball (it keeps the image name, unlike an oci-archive) and, with
# --import, loads it into the node's containerd (namespace k8s.io). Skips the build when the
# inputs (context files past .dockerignore, Dockerfile, target, tag, build args, base) are unchanged.
# Prints the tarball path.
source "$(dirname "$0")/lib.sh"

tag="" file="" target="" context="$REPO_ROOT" import=0 args=()
while (($#)); do
  case "$1" in
    --tag) tag="$2"; shift 2 ;;
    --file) file="$2"; shift 2 ;;
    --target) target="$2"; shift 2 ;;
    --context) context="$2"; shift 2 ;;
    --build-arg) args+=("$2"); shift 2 ;;
    --import) import=1; shift ;;
    *) die "build-image.sh: unknown argument $1" ;;
  esac
done
[[ -n "$tag" ]] || die "build-image.sh: --tag is required"
[[ -f "$file" ]] || die "build-image.sh: --file $file: no such Dockerfile"

base="$("$(dirname "$0")/base.sh")"
has_base=0
for a in "${args[@]}"; do [[ "$a" == BASE_IMAGE=* ]] && has_base=1; done
((has_base)) || args+=("BASE_IMAGE=$base")

key="$(python3 "$(dirname "$0")/context_hash.py" "$context" "$file" "$tag" "target=$target" "${args[@]}")"
name="$(basename "${tag%%:*}")"
tarball="$IMAGES_CACHE/$name-$key.tar"

if [[ ! -s "$tarball" ]]; then
  mkdir -p "$IMAGES_CACHE"
  # Layers of earlier builds are kept (the two Dockerfiles share their wheels stage) until the
  # store grows past 20 GB; then images no tag points to go.
  if [[ -d "$BUILDAH_ROOT" ]] && (( $(du -sm "$BUILDAH_ROOT" | cut -f1) > 20000 )); then
    buildah_ rmi --prune >/dev/null 2>&1 || true
  fi
  build_args=()
  for a in "${args[@]}"; do build_args+=(--build-arg "$a"); done
  [[ -n "$target" ]] && build_args+=(--target "$target")
  # pip in RUN steps must trust what this host trusts: these machines reach PyPI through a
  # TLS-intercepting egress proxy whose CA is only in the host's bundle. The bundle and a pip.conf
  # naming it are bind-mounted into RUN steps only; no layer of the image keeps them.
  host_ca="${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}"
  if [[ -f "$host_ca" ]]; then
    pipconf="$(mktemp)"
    trap 'rm -f "$pipconf"' EXIT
    printf '[global]\ncert = /run/mlserving-host-ca.crt\n' >"$pipconf"
    chmod 644 "$pipconf"
    build_args+=(--volume "$host_ca:/run/mlserving-host-ca.crt:ro" --volume "$pipconf:/etc/pip.conf:ro")
  fi
  log "buildah bud $tag from $file (storage $STORAGE_DRIVER, isolation $BUILDAH_ISOLATION)"
  start=$(date +%s)
  buildlog="$IMAGES_CACHE/$name-build.log"
  if ! nice -n 10 buildah --root "$BUILDAH_ROOT" --runroot "$BUILDAH_RUNROOT" --storage-driver "$STORAGE_DRIVER" \
      bud --layers --format docker --file "$file" --tag "$tag" "${build_args[@]}" "$context" >"$buildlog" 2>&1; then
    tail -40 "$buildlog" >&2
    die "buildah bud of $tag failed; full log in $buildlog"
  fi
  buildah_ push --quiet "$tag" "docker-archive:$tarball.tmp:$tag"
  mv "$tarball.tmp" "$tarball"
  log "built $tag in $(( $(date +%s) - start )) s -> $tarball ($(du -h "$tarball" | cut -f1))"
  # Older tarballs of this image are superseded (the key is 16 hex digits, so server-* never
  # matches server-full-*).
  find "$IMAGES_CACHE" -maxdepth 1 -name "$name-$(printf '%.0s?' {1..16}).tar" ! -name "$(basename "$tarball")" -delete
fi

if ((import)); then
  "$(dirname "$0")/import.sh" "$tarball" "$tag"
fi
echo "$tarball"
