#!/usr/bin/env bash
# build-all.sh [--import]: the project's images, docker.io/mlserving/{server,operator}:<version>
# (the tags deploy/ uses) and docker.io/mlserving/server-full:<version> (Dockerfile.server's
# server-full target, for spec.image), built on the local base. With --import they are loaded
# into the real node's containerd. Prints one line per image.
source "$(dirname "$0")/lib.sh"

version="$(project_version)"
[[ -n "$version" ]] || die "could not read the project version from pyproject.toml"
# name Dockerfile target
for image in "server server" "operator operator" "server-full server server-full"; do
  read -r name dockerfile target <<<"$image"
  start=$(date +%s)
  tarball="$("$(dirname "$0")/build-image.sh" --tag "docker.io/mlserving/$name:$version" \
    --file "$REPO_ROOT/Dockerfile.$dockerfile" ${target:+--target "$target"} --context "$REPO_ROOT" "$@")"
  echo "docker.io/mlserving/$name:$version $tarball ($(( $(date +%s) - start )) s)"
done
