#!/usr/bin/env bash
# Installs Debian's prometheus package (prometheus + promtool) for the monitoring tests, unless
# both binaries are already on PATH. The tests start their own Prometheus on 127.0.0.1; the
# package's service is never used (no init system starts it in CI containers).
set -euo pipefail
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "install-prometheus: no apt-get here; install prometheus and promtool (2.x) yourself" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
if ! apt-cache policy prometheus | grep -q 'Candidate: [0-9]'; then
  $SUDO apt-get update -qq
fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
prometheus --version 2>&1 | head -1
