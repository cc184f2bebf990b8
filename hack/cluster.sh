#!/usr/bin/env bash
# Local Kubernetes control plane for tests and development, no Docker needed.
#
#   hack/cluster.sh build    build (or reuse) every binary into the cache
#   hack/cluster.sh up       start the cluster, or reuse the one this checkout runs
#                 --real-node  a real node (kubelet, containerd) instead of kwok: hack/node/up.sh
#   hack/cluster.sh status   exit 0 when the cluster answers /readyz
#   hack/cluster.sh env      print `export KUBECONFIG=... PATH=...` for eval
#   hack/cluster.sh down     stop every process `up` started and remove the state
#   hack/cluster.sh pids     print "<component> <pid>" for the running components
#   hack/cluster.sh missing  print the control-plane binaries not yet in the cache
#
# Binaries (Kubernetes v1.35.4, etcd v3.6.5, kwok v0.8.0) are built from their
# published Go modules (hack/go.mod, hack/kwok/go.mod) once, into
# ${XDG_CACHE_HOME:-~/.cache}/mlserving/k8s/v1.35.4/bin. Binaries found in
# $KUBEBUILDER_ASSETS or on PATH are copied instead when their version matches.
# kwokctl (runtime "binary") runs etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and the kwok controller as local processes on 127.0.0.1;
# kwok makes the two fake nodes Ready and drives their pods to Running.
#
# Environment:
#   MLSERVING_CLUSTER_STATE  state directory (default: <checkout>/.cluster)
#   KUBEBUILDER_ASSETS       setup-envtest binaries (etcd, kube-apiserver, kubectl)
set -euo pipefail

K8S_VERSION=v1.35.4
ETCD_VERSION=3.6.5
KWOK_VERSION=v0.8.0
CLUSTER_NAME=mlserving
NODE_COUNT=2

HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HACK_DIR")
BIN_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/mlserving/k8s/$K8S_VERSION/bin
STATE_DIR=${MLSERVING_CLUSTER_STATE:-$ROOT/.cluster}
KUBECONFIG_PATH=$STATE_DIR/kubeconfig
KWOK_CONFIG=$STATE_DIR/kwokctl.yaml
export KWOK_WORKDIR=$STATE_DIR/kwok
CLUSTER_DIR=$KWOK_WORKDIR/clusters/$CLUSTER_NAME

# What `up` needs; `build` adds the node components for the real-node work.
CONTROL_PLANE_BINARIES=(etcd kube-apiserver kubectl kube-controller-manager kube-scheduler kwok kwokctl)
NODE_BINARIES=(kubelet kube-proxy)

# Serialises up/down of one state directory (several test sessions may share a checkout).
take_lock() {
	local lock
	lock=${TMPDIR:-/tmp}/mlserving-cluster-up-$(printf %s "$STATE_DIR" | md5sum | cut -c1-16).lock
	exec 9>"$lock"
	flock 9
}

log() { echo "cluster: $*" >&2; }
die() { echo "cluster: error: $*" >&2; exit 1; }

# --- binaries --------------------------------------------------------------

# Go package (relative to the module directory) that builds a binary.
go_package() {
	case $1 in
	etcd) echo ./tools/etcd ;;
	kwok | kwokctl) echo "sigs.k8s.io/kwok/cmd/$1" ;;
	*) echo "k8s.io/kubernetes/cmd/$1" ;;
	esac
}

go_module_dir() {
	case $1 in
	kwok | kwokctl) echo "$HACK_DIR/kwok" ;;
	*) echo "$HACK_DIR" ;;
	esac
}

# The version line a binary must print to be taken from elsewhere.
version_matches() {
	local name=$1 path=$2 out
	case $name in
	etcd) out=$("$path" --version 2>/dev/null) || return 1
		[[ $out == *"etcd Version: $ETCD_VERSION"* ]] ;;
	kubectl) out=$("$path" version --client 2>/dev/null) || return 1
		[[ $out == *"Client Version: $K8S_VERSION"* ]] ;;
	kwok | kwokctl) out=$("$path" --version 2>/dev/null) || return 1
		[[ $out == *"${KWOK_VERSION#v}"* ]] ;;
	*) out=$("$path" --version 2>/dev/null) || return 1
		[[ $out == *"Kubernetes $K8S_VERSION"* ]] ;;
	esac
}

# Kubernetes commands report their version from these variables; without
# them a module build says v0.0.0-master and kwokctl cannot pick its flags.
k8s_ldflags() {
	local pkg flags="-s -w"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		flags+=" -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(cut -d. -f2 <<<"$K8S_VERSION")"
		flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitTreeState=clean"
		flags+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
	done
	echo "$flags"
}

ensure_binary() {
	local name=$1 dest=$BIN_DIR/$1 candidate start
	[[ -x $dest ]] && return 0
	mkdir -p "$BIN_DIR"
	for candidate in "${KUBEBUILDER_ASSETS:+$KUBEBUILDER_ASSETS/$name}" "$(command -v "$name" || true)"; do
		if [[ -n $candidate && -x $candidate ]] && version_matches "$name" "$candidate"; then
			cp "$candidate" "$dest.tmp" && mv "$dest.tmp" "$dest"
			log "$name: copied from $candidate"
			return 0
		fi
	done
	command -v go >/dev/null || die "$name is not in $BIN_DIR and Go is not installed.
  Install Go >= 1.25 (https://go.dev/dl/) and run: hack/cluster.sh build
  or point KUBEBUILDER_ASSETS at setup-envtest binaries for etcd, kube-apiserver and kubectl."
	log "$name: building from $(go_package "$name") ..."
	start=$(date +%s)
	local ldflags="-s -w"
	case $name in kube*) ldflags=$(k8s_ldflags) ;; esac
	(cd "$(go_module_dir "$name")" &&
		nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$dest.tmp" "$(go_package "$name")") ||
		die "go build of $name failed (see the output above)"
	mv "$dest.tmp" "$dest"
	log "$name: built in $(($(date +%s) - start)) s"
}

cmd_build() {
	local start name
	start=$(date +%s)
	for name in "${CONTROL_PLANE_BINARIES[@]}" "${NODE_BINARIES[@]}"; do
		ensure_binary "$name"
	done
	log "binaries ready in $BIN_DIR ($(($(date +%s) - start)) s)"
}

# --- cluster ---------------------------------------------------------------

kubectl_() { "$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }
# 9>&-: the daemons kwokctl starts must not inherit (and so hold) the up/down lock.
kwokctl_() { "$BIN_DIR/kwokctl" --name "$CLUSTER_NAME" "$@" 9>&-; }

is_ready() {
	[[ -f $KUBECONFIG_PATH && -x $BIN_DIR/kubectl ]] &&
		[[ $(kubectl_ get --raw /readyz --request-timeout=5s 2>/dev/null) == ok ]]
}

write_kwokctl_config() {
	mkdir -p "$STATE_DIR"
	cat >"$KWOK_CONFIG" <<EOF
# Generated by hack/cluster.sh: every binary is local, so nothing is downloaded.
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: 127.0.0.1
  securePort: true
  kubeAuthorization: true
  kubeAdmission: true
  kubeVersion: $K8S_VERSION
  etcdBinary: $BIN_DIR/etcd
  kubeApiserverBinary: $BIN_DIR/kube-apiserver
  kubeControllerManagerBinary: $BIN_DIR/kube-controller-manager
  kubeSchedulerBinary: $BIN_DIR/kube-scheduler
  kwokControllerBinary: $BIN_DIR/kwok
  kubectlBinary: $BIN_DIR/kubectl
componentsPatches:
- name: kube-apiserver
  extraArgs:
  - key: enable-admission-plugins
    value: PodSecurity  # on by default since 1.25; named here because tests rely on it
- name: kube-controller-manager
  extraArgs:
  - key: controllers
    value: "*"
EOF
}

apply_nodes() {
	local i
	for ((i = 0; i < NODE_COUNT; i++)); do
		cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "500"}
  capacity: {cpu: "32", memory: 256Gi, pods: "500"}
EOF
	done | kubectl_ apply -f - >/dev/null
}

wait_usable() {
	local deadline=$((SECONDS + ${1:-120}))
	until is_ready; do
		((SECONDS < deadline)) || die "kube-apiserver not ready after ${1:-120} s; last log lines:
$(tail -n 15 "$CLUSTER_DIR/logs/kube-apiserver.log" 2>&1)
  all logs: $CLUSTER_DIR/logs"
		sleep 0.5
	done
	apply_nodes
	kubectl_ wait --for=condition=Ready node --all --timeout=$((deadline - SECONDS))s >/dev/null ||
		die "nodes not Ready: $(kubectl_ get nodes 2>&1)"
	# Pods cannot be created before the ServiceAccount controller made the default account.
	until kubectl_ get serviceaccount default -n default >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "default ServiceAccount never appeared (controller-manager logs: $CLUSTER_DIR/logs)"
		sleep 0.5
	done
}

cmd_up() {
	local start=$SECONDS name
	if is_ready; then
		log "reusing the running cluster ($KUBECONFIG_PATH)"
		return 0
	fi
	for name in "${CONTROL_PLANE_BINARIES[@]}"; do ensure_binary "$name"; done
	start=$SECONDS
	if [[ -d $CLUSTER_DIR ]]; then
		log "restarting the stopped cluster in $CLUSTER_DIR"
		kwokctl_ start cluster >>"$STATE_DIR/kwokctl.log" 2>&1 || { stop_cluster; create_cluster; }
	else
		create_cluster
	fi
	wait_usable 120
	log "cluster ready in $((SECONDS - start)) s; kubeconfig: $KUBECONFIG_PATH"
}

create_cluster() {
	write_kwokctl_config
	log "starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok"
	kwokctl_ create cluster --config "$KWOK_CONFIG" --kubeconfig "$KUBECONFIG_PATH" \
		--wait 120s --quiet-pull >>"$STATE_DIR/kwokctl.log" 2>&1 ||
		die "kwokctl create cluster failed: $(tail -n 20 "$STATE_DIR/kwokctl.log")
  component logs: $CLUSTER_DIR/logs"
}

cmd_missing() {
	local name
	for name in "${CONTROL_PLANE_BINARIES[@]}"; do
		[[ -x $BIN_DIR/$name ]] || echo "$name"
	done
}

cmd_pids() {
	local f
	[[ -d $CLUSTER_DIR/pids ]] || return 0
	for f in "$CLUSTER_DIR"/pids/*.pid; do
		[[ -f $f ]] && echo "$(basename "$f" .pid) $(cat "$f")"
	done
}

# The given pids that still run one of this cluster's binaries (a stale pid
# file must not make us signal an unrelated process that reused the pid).
pids_alive() {
	local pid cmdline
	for pid in "$@"; do
		cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
		[[ $cmdline == "$CLUSTER_DIR/bin/"* ]] && echo "$pid"
	done
	return 0
}

# Stops what kwokctl started and waits for it; a process that outlives
# `kwokctl delete cluster` by 10 s is sent SIGTERM, then SIGKILL.
stop_cluster() {
	local pids left signal
	pids=$(cmd_pids | awk '{print $2}')
	if [[ -d $CLUSTER_DIR && -x $BIN_DIR/kwokctl ]]; then
		kwokctl_ delete cluster --kubeconfig "$KUBECONFIG_PATH" >>"$STATE_DIR/kwokctl.log" 2>&1 ||
			log "kwokctl delete cluster failed (see $STATE_DIR/kwokctl.log)"
	fi
	for signal in TERM KILL; do
		# shellcheck disable=SC2086 # word splitting of the pid list is intended
		for _ in $(seq 50); do
			left=$(pids_alive $pids)
			[[ -z $left ]] && break
			sleep 0.2
		done
		[[ -z $left ]] && break
		log "still running after kwokctl delete: pids ${left//$'\n'/ }; sending SIG$signal"
		# shellcheck disable=SC2086
		kill -s "$signal" $left 2>/dev/null || true
	done
	rm -rf "$KWOK_WORKDIR"
}

cmd_down() {
	stop_cluster
	rm -f "$KUBECONFIG_PATH" "$KWOK_CONFIG" "$STATE_DIR/kwokctl.log"
	# Bookkeeping of tests/conftest.py (which sessions use this cluster, who started it).
	rm -rf "$STATE_DIR/pytest-sessions" "$STATE_DIR/started-by-pytest"
	rmdir "$STATE_DIR" 2>/dev/null || true
	log "stopped"
}

cmd_status() {
	if is_ready; then
		echo "running: kubeconfig $KUBECONFIG_PATH"
		kubectl_ get nodes
		return 0
	fi
	echo "not running (state: $STATE_DIR)"
	return 1
}

cmd_env() {
	echo "export KUBECONFIG=$KUBECONFIG_PATH"
	echo "export PATH=$BIN_DIR:\$PATH"
}

case ${1:-} in
build) cmd_build ;;
# --real-node: one real kubelet+containerd node instead of kwok (hack/node/, run as root).
up) [[ ${2:-} == --real-node ]] && exec "$HACK_DIR/node/up.sh"; take_lock; cmd_up ;;
down) [[ ${2:-} == --real-node ]] && exec "$HACK_DIR/node/down.sh"; take_lock; cmd_down ;;
status) [[ ${2:-} == --real-node ]] && exec "$HACK_DIR/node/status.sh"; cmd_status ;;
env) cmd_env ;;
pids) cmd_pids ;;
missing) cmd_missing ;;
*) echo "usage: $0 build|up [--real-node]|down [--real-node]|status [--real-node]|env|pids|missing" >&2; exit 2 ;;
esac
