#!/usr/bin/env bash
# hack/node/up.sh: one real Kubernetes node on this machine, no Docker needed.
#   etcd + kube-apiserver + controller-manager + scheduler (binaries of hack/cluster.sh's cache),
#   containerd (Debian, CRI plugin) + runc + CNI bridge, kubelet, kube-proxy (iptables), CoreDNS,
#   metrics-server (the Metrics API the HPAs and `kubectl top` read)
#   and a NetworkPolicy enforcer (kube-router's network-policy controller alone: iptables + ipset).
# Idempotent: a second run reuses what is running. Everything it starts is stopped by down.sh.
# Prints the kubeconfig path on stdout when the node is Ready.
source "$(dirname "$0")/lib.sh"

[[ $EUID -eq 0 ]] || die "the real node needs root (containerd, kubelet, iptables, bridges)"
t0=$(date +%s)

"$NODE_LIB_DIR/deps.sh"
missing=()
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; do
  [[ -x "$K8S_BIN/$b" ]] || missing+=("$b")
done
if ((${#missing[@]})); then
  # Built from the pinned k8s.io/kubernetes module into the shared cache, as hack/cluster.sh up does
  # (about 40 minutes of Go builds on 2 cores the first time).
  log "building the missing Kubernetes binaries: ${missing[*]}"
  "$REPO_ROOT/hack/cluster.sh" build >&2
  for b in "${missing[@]}"; do
    [[ -x "$K8S_BIN/$b" ]] || die "$K8S_BIN/$b is still missing after hack/cluster.sh build"
  done
fi
"$NODE_LIB_DIR/build-coredns.sh"
"$NODE_LIB_DIR/build-metrics-server.sh"
"$NODE_LIB_DIR/build-kube-router.sh" >/dev/null

if ! daemon_pid containerd >/dev/null && { [[ -d "$NODE_RUN" ]] || ip link show "$NODE_BRIDGE" >/dev/null 2>&1; }; then
  # Leftovers of a node whose processes were killed without down.sh (an ended session, a reboot):
  # clear them so this start is a fresh one.
  log "cleaning up the leftovers of a node that was not stopped with down.sh"
  "$NODE_LIB_DIR/down.sh"
fi
mkdir -p "$NODE_STATE" "$NODE_RUN" "$NODE_LOGS" "$(dirname "$REPO_KUBECONFIG")" /run/netns
if [[ ! -f "$NODE_RUN/netns-before" ]]; then
  # A fresh start: remember which pod netns existed before (down.sh removes only ours), new logs.
  ls /run/netns >"$NODE_RUN/netns-before"
  rm -f "$NODE_LOGS"/*.log
fi
"$NODE_LIB_DIR/pki.sh"
"$NODE_LIB_DIR/render-configs.sh"
"$NODE_LIB_DIR/network.sh" up
pki="$NODE_STATE/pki"
kubectl_() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

# --- container runtime -------------------------------------------------------------------------
mkdir -p "$NODE_RUN/containerd"
start_daemon containerd containerd --config "$NODE_STATE/config/containerd.toml"
wait_for containerd 30 ctr --address "$CONTAINERD_SOCK" version
if ! ctr_k8s image ls -q | grep -qx "$SANDBOX_IMAGE"; then
  ctr_k8s image import "$("$REPO_ROOT/hack/images/pause.sh")" >/dev/null
fi

# --- control plane -----------------------------------------------------------------------------
start_daemon etcd "$K8S_BIN/etcd" --name default --data-dir "$NODE_STATE/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT" \
  --listen-metrics-urls "" --unsafe-no-fsync=true --log-level warn

# Listens only on the node bridge address: that is what the `kubernetes` Service's endpoint must
# be (pods cannot reach the host's loopback), and the host reaches it locally as well.
start_daemon kube-apiserver "$K8S_BIN/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port "$APISERVER_PORT" \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" \
  --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types InternalIP \
  --service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --authorization-mode Node,RBAC \
  --enable-admission-plugins NodeRestriction \
  --requestheader-client-ca-file "$pki/front-proxy-ca.crt" \
  --requestheader-allowed-names front-proxy-client \
  --requestheader-username-headers X-Remote-User \
  --requestheader-group-headers X-Remote-Group \
  --requestheader-extra-headers-prefix X-Remote-Extra- \
  --proxy-client-cert-file "$pki/front-proxy-client.crt" --proxy-client-key-file "$pki/front-proxy-client.key" \
  --enable-aggregator-routing=true \
  --profiling=false --v=1
wait_for "kube-apiserver /readyz" 120 kubectl_ get --raw /readyz

start_daemon kube-controller-manager "$K8S_BIN/kube-controller-manager" \
  --kubeconfig "$pki/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$pki/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$pki/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port 10357 \
  --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
  --use-service-account-credentials \
  --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --leader-elect=false --profiling=false --v=1
start_daemon kube-scheduler "$K8S_BIN/kube-scheduler" \
  --kubeconfig "$pki/scheduler.kubeconfig" \
  --authentication-kubeconfig "$pki/scheduler.kubeconfig" \
  --authorization-kubeconfig "$pki/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port 10359 \
  --leader-elect=false --profiling=false --v=1

# CoreDNS reads Services, EndpointSlices, Pods and Namespaces with its own identity.
kubectl_ apply -f "$NODE_LIB_DIR/coredns-rbac.yaml" >/dev/null
start_daemon coredns "$K8S_BIN/coredns" -conf "$NODE_STATE/config/Corefile"

# --- node ----------------------------------------------------------------------------------------
mkdir -p "$NODE_STATE/kubelet" "$NODE_STATE/pod-logs"
start_daemon kubelet "$K8S_BIN/kubelet" \
  --config "$NODE_STATE/config/kubelet.yaml" \
  --kubeconfig "$pki/kubelet.kubeconfig" \
  --root-dir "$NODE_STATE/kubelet" --cert-dir "$NODE_STATE/kubelet/pki" \
  --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --v=1
start_daemon kube-proxy "$K8S_BIN/kube-proxy" --config "$NODE_STATE/config/kube-proxy.yaml" --v=1

wait_for "node $NODE_NAME to register" 120 kubectl_ get node "$NODE_NAME"
# NetworkPolicies are enforced by kube-router's network-policy controller, run alone (no routing,
# no service proxy: the bridge CNI and kube-proxy do those). It filters pod traffic in iptables
# chains (KUBE-ROUTER-*, KUBE-POD-FW-*, KUBE-NWPLCY-*) with ipsets of the selected pods.
kubectl_ apply -f "$NODE_LIB_DIR/kube-router-rbac.yaml" >/dev/null
start_daemon kube-router "$KUBE_ROUTER_BIN" --kubeconfig "$pki/kube-router.kubeconfig" \
  --hostname-override "$NODE_NAME" --run-firewall=true --run-router=false --run-service-proxy=false \
  --enable-cni=false --service-cluster-ip-range "$SERVICE_CIDR" \
  --health-port "$KUBE_ROUTER_HEALTH_PORT" --metrics-port 0 --v=1
wait_for "kube-router healthz" 60 curl -fsS "http://127.0.0.1:$KUBE_ROUTER_HEALTH_PORT/healthz"
# Its rules really are in place on this kernel (FORWARD hooks into its chain), not just its process.
kube_router_hooked() { iptables -S FORWARD 2>/dev/null | grep -q -- "-j KUBE-ROUTER-FORWARD"; }
wait_for "kube-router's iptables chains" 60 kube_router_hooked
kubectl_ wait --for=condition=Ready "node/$NODE_NAME" --timeout=180s >/dev/null \
  || die "node $NODE_NAME not Ready; see $NODE_LOGS/kubelet.log"
wait_for "CoreDNS ready" 60 curl -fsS http://127.0.0.1:18181/ready
# The Metrics API: a node without it still runs pods, so a failure here is loud but not fatal
# (the HPA tests then fail saying the Metrics API is missing).
"$NODE_LIB_DIR/metrics-server.sh" \
  || log "WARNING: metrics-server did not come up (see $NODE_LOGS/metrics-server.log): no Metrics API, HPAs cannot scale"
# The default ServiceAccount must exist before pods can be created in a namespace.
wait_for "default ServiceAccount" 60 kubectl_ -n default get serviceaccount default

cp "$KUBECONFIG_ADMIN" "$REPO_KUBECONFIG"
log "node $NODE_NAME Ready in $(( $(date +%s) - t0 )) s; export KUBECONFIG=$REPO_KUBECONFIG"
echo "$REPO_KUBECONFIG"
