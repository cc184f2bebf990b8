#!/usr/bin/env bash
# build-all.sh [--import]: the project's two images, docker.io/mlserving/{server,operator}:<version>
# (the tags deploy/ uses), built from Dockerfile.server and Dockerfile.operator on the local base.
# With --import they are loaded into the real node's containerd. Prints one line per image.
source "$(dirname "$0")/lib.sh"

version="$(project_version)"
[[ -n "$version" ]] || die "could not read the project version from pyproject.toml"
for name in server operator; do
  start=$(date +%s)
  tarball="$("$(dirname "$0")/build-image.sh" --tag "docker.io/mlserving/$name:$version" \
    --file "$REPO_ROOT/Dockerfile.$name" --context "$REPO_ROOT" "$@")"
  echo "docker.io/mlserving/$name:$version $tarball ($(( $(date +%s) - start )) s)"
done
