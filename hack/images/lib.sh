# shellcheck shell=bash disable=SC2034  # sourced: the variables are used by the scripts that source it
# Shared settings for building images without Docker (buildah + debootstrap).
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/node/lib.sh"

IMAGES_CACHE="$MLS_CACHE/images"          # docker-archive tarballs, keyed by a hash of their inputs
# Storage of our own, so builds never touch (or depend on) a system-wide containers store.
# overlay when the kernel has it: vfs also works but copies the whole root filesystem for every
# layer (measured here: server image 798 s with vfs; operator 207 s with overlay on a busy machine).
if [[ -z "${STORAGE_DRIVER:-}" ]]; then
  if grep -qw overlay /proc/filesystems; then STORAGE_DRIVER=overlay; else STORAGE_DRIVER=vfs; fi
fi
export STORAGE_DRIVER
export BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"
BUILDAH_ROOT="$MLS_CACHE/buildah/$STORAGE_DRIVER"
BUILDAH_RUNROOT="/run/mlserving-buildah"
buildah_() { buildah --root "$BUILDAH_ROOT" --runroot "$BUILDAH_RUNROOT" --storage-driver "$STORAGE_DRIVER" "$@"; }

# hash_inputs FILE_OR_DIR... : stable sha256 over the inputs' content (and file names inside dirs).
hash_inputs() {
  local p
  for p in "$@"; do
    if [[ -d "$p" ]]; then
      (cd "$p" && find . -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | LC_ALL=C sort -z \
        | xargs -0 sha256sum) | sed "s|  \./|  $p/|"
    elif [[ -e "$p" ]]; then
      sha256sum <"$p"
    else
      echo "missing $p"
    fi
  done | sha256sum | cut -c1-16
}

project_version() {
  "$REPO_ROOT/.venv/bin/python" - "$REPO_ROOT" <<'PY' 2>/dev/null || sed -n 's/^version *= *"\(.*\)"/\1/p' "$REPO_ROOT/pyproject.toml" | head -1
import sys, tomllib, pathlib
print(tomllib.loads((pathlib.Path(sys.argv[1]) / "pyproject.toml").read_text())["project"]["version"])
PY
}
