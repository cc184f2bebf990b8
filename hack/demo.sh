#!/usr/bin/env bash
# `make demo`: the A/B example from clone to predictions, on whatever this machine can run.
#   - Docker engine + kind + kubectl: hack/demo-kind.sh up (everything in a kind cluster).
#   - otherwise: hack/demo-local.sh (the local control plane with kwok fake nodes for the
#     Kubernetes side, local processes on 127.0.0.1 for the operator, servers and router).
# MLSERVING_DEMO=local skips the Docker check and takes the local path; =kind insists on kind.
set -euo pipefail
cd "$(dirname "$0")/.."

case ${MLSERVING_DEMO:-auto} in
auto)
	if reason=$(bash hack/demo-kind.sh available 2>&1); then
		echo "demo: Docker, kind and kubectl found: running the kind demo (hack/demo-kind.sh up)"
		exec bash hack/demo-kind.sh up
	fi
	echo "demo: not using kind: ${reason:-hack/demo-kind.sh available said no}"
	echo "demo: running the no-Docker demo instead (hack/demo-local.sh): the Kubernetes side on a local"
	echo "      control plane with kwok fake nodes, predictions from local processes on 127.0.0.1"
	;;
kind) exec bash hack/demo-kind.sh up ;;
local) echo "demo: MLSERVING_DEMO=local: running the no-Docker demo (hack/demo-local.sh)" ;;
*) echo "demo: error: MLSERVING_DEMO must be auto, kind or local, got '$MLSERVING_DEMO'" >&2; exit 2 ;;
esac
exec bash hack/demo-local.sh
