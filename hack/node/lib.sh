# shellcheck shell=bash disable=SC2034  # sourced: the variables are used by the scripts that source it
# Shared settings for the real-node mode (sourced by hack/node/*.sh and hack/images/*.sh).
# One real node per machine: the bridge, iptables chains and /run paths are machine-wide,
# so the state lives under fixed system paths rather than in the checkout.
set -euo pipefail

NODE_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$NODE_LIB_DIR/../.." && pwd)"

# Same pinned version and flat binary cache as hack/cluster.sh (its `build` fills it).
K8S_VERSION="${K8S_VERSION:-$(awk '$1 == "k8s.io/kubernetes" {print $2; exit}' "$REPO_ROOT/hack/go.mod")}"
MLS_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/mlserving"
K8S_BIN="$MLS_CACHE/k8s/$K8S_VERSION/bin"
COREDNS_VERSION="${COREDNS_VERSION:-v1.14.7}"
METRICS_SERVER_VERSION="${METRICS_SERVER_VERSION:-v0.9.0}"
METRICS_SERVER_BIN="$MLS_CACHE/metrics-server/$METRICS_SERVER_VERSION/bin/metrics-server"
METRICS_SERVER_PORT=10443       # on the node address; the aggregator reaches it there
# The NetworkPolicy enforcer (kube-router's network-policy controller alone; docs/real-node.md).
KUBE_ROUTER_VERSION="${KUBE_ROUTER_VERSION:-v2.1.0}"
KUBE_ROUTER_BIN="$MLS_CACHE/kube-router/$KUBE_ROUTER_VERSION/kube-router"
KUBE_ROUTER_HEALTH_PORT=20244

NODE_STATE="${NODE_STATE:-/var/lib/mlserving-node}"   # certs, configs, containerd root, kubelet root
NODE_RUN="${NODE_RUN:-/run/mlserving-node}"           # sockets and pid files
NODE_LOGS="$NODE_STATE/logs"
NODE_NAME="mls-node"

# The node's own address sits on a bridge this tooling creates; the same bridge carries the pods.
# The API server listens on it (pods reach it through the `kubernetes` Service, whose endpoint
# cannot be a loopback address) and the node registers with it as its InternalIP.
NODE_BRIDGE="mlsbr0"
NODE_IP="10.244.0.1"
POD_CIDR="10.244.0.0/24"
SERVICE_CIDR="10.96.0.0/16"
KUBERNETES_SERVICE_IP="10.96.0.1"
CLUSTER_DNS_IP="$NODE_IP"       # CoreDNS runs as a host process on the node address
CLUSTER_DOMAIN="cluster.local"

APISERVER_PORT=6443
ETCD_CLIENT_PORT=12379          # not the default 2379: the kwok cluster of hack/cluster.sh may run too
ETCD_PEER_PORT=12380
APISERVER_URL="https://$NODE_IP:$APISERVER_PORT"

CONTAINERD_SOCK="$NODE_RUN/containerd/containerd.sock"
SANDBOX_IMAGE="registry.k8s.io/pause:3.10"
KUBECONFIG_ADMIN="$NODE_STATE/pki/admin.kubeconfig"
# Where tools and tests of this checkout look for the node's kubeconfig.
REPO_KUBECONFIG="$REPO_ROOT/.cluster/node/kubeconfig"

log() { printf '[node %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ctr_k8s() { ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }

# daemon_pid NAME: the recorded pid of NAME if that process is alive and really ours (every
# daemon's command line names a path under $NODE_STATE); a stale pid file left by a killed session
# or a reboot must never make us signal an unrelated process.
daemon_pid() {
  local file="$NODE_RUN/pids/$1" pid
  [[ -f "$file" ]] || return 1
  pid="$(cat "$file")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$NODE_STATE/" || return 1
  echo "$pid"
}

# Start a long-running process in the background, detached from the caller's terminal,
# with its pid recorded so that down.sh can stop exactly what up.sh started.
start_daemon() {
  local name="$1"; shift
  mkdir -p "$NODE_RUN/pids" "$NODE_LOGS"
  if daemon_pid "$name" >/dev/null; then
    log "$name already running (pid $(daemon_pid "$name"))"
    return 0
  fi
  setsid "$@" >>"$NODE_LOGS/$name.log" 2>&1 < /dev/null &
  echo $! >"$NODE_RUN/pids/$name"
  log "started $name (pid $!), log $NODE_LOGS/$name.log"
}

# wait_for DESCRIPTION TIMEOUT_S COMMAND... : poll until COMMAND succeeds.
wait_for() {
  local what="$1" timeout="$2"; shift 2
  local deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    if (( $(date +%s) >= deadline )); then
      die "timed out after ${timeout}s waiting for $what"
    fi
    sleep 0.5
  done
}

# go_install_cached WHAT TARGET PACKAGE@VERSION [LDFLAGS]: `go install` one binary to TARGET
# (nice -n 10, or $GO_BUILD_NICE; static, stripped, LDFLAGS added, build tags $GO_BUILD_TAGS)
# unless TARGET is already there. The caller checks the cached binary's version (and tags) first
# when its path does not carry them.
go_install_cached() {
  local what="$1" target="$2" package="$3" ldflags="${4:-}" gobin start
  [[ -x "$target" ]] && return 0
  mkdir -p "$(dirname "$target")"
  gobin="$(mktemp -d)"
  log "building $what (go install, nice -n ${GO_BUILD_NICE:-10})"
  start=$(date +%s)
  GOBIN="$gobin" CGO_ENABLED=0 nice -n "${GO_BUILD_NICE:-10}" go install -trimpath -tags "${GO_BUILD_TAGS:-}" \
    -ldflags "-s -w $ldflags" "$package" \
    || { rm -rf "$gobin"; die "go install $package failed"; }
  mv "$gobin/$(basename "${package%@*}")" "$target"
  rm -rf "$gobin"
  log "$what built in $(( $(date +%s) - start )) s: $target"
}
