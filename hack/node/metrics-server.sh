#!/usr/bin/env bash
# hack/node/metrics-server.sh: metrics-server as a host process of the real node, registered as the
# v1beta1.metrics.k8s.io APIService (the Metrics API that HPAs and `kubectl top` read). Called by
# up.sh once the node is Ready; stopped by down.sh.
#
# TLS both ways, no insecure flag: the aggregator verifies metrics-server's serving cert
# (metrics-server.kube-system.svc, from the cluster CA; the APIService's caBundle) and proxies
# with the front-proxy client cert; metrics-server verifies the kubelet's serving cert (also from
# the cluster CA) and authenticates to it with its own client cert (CN mlserving:metrics-server).
source "$(dirname "$0")/lib.sh"

pki="$NODE_STATE/pki"
kubectl_() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

# Its permissions first: at start it reads kube-system/extension-apiserver-authentication and
# exits when that is forbidden (started before its RoleBinding, it died on a busy machine).
kubectl_ apply -f "$NODE_LIB_DIR/metrics-server-rbac.yaml" >/dev/null
can_read_auth_configmap() {
  [[ "$(kubectl_ auth can-i get configmaps/extension-apiserver-authentication -n kube-system \
    --as mlserving:metrics-server 2>/dev/null)" == "yes" ]]
}
wait_for "metrics-server's RBAC in force" 60 can_read_auth_configmap

start_daemon metrics-server "$METRICS_SERVER_BIN" \
  --kubeconfig "$pki/metrics-server.kubeconfig" \
  --authentication-kubeconfig "$pki/metrics-server.kubeconfig" \
  --authorization-kubeconfig "$pki/metrics-server.kubeconfig" \
  --bind-address "$NODE_IP" --secure-port "$METRICS_SERVER_PORT" \
  --tls-cert-file "$pki/metrics-server-serving.crt" --tls-private-key-file "$pki/metrics-server-serving.key" \
  --kubelet-certificate-authority "$pki/ca.crt" \
  --kubelet-preferred-address-types InternalIP \
  --metric-resolution "${METRICS_RESOLUTION:-15s}" --v=1

# Then the Service (no selector: its endpoint is this host) and the APIService.
ca_bundle="$(base64 -w0 <"$pki/ca.crt")"
registration="$(cat <<YAML
apiVersion: v1
kind: Service
metadata: {name: metrics-server, namespace: kube-system, labels: {app.kubernetes.io/name: metrics-server}}
spec:
  ports: [{name: https, port: $METRICS_SERVER_PORT, targetPort: $METRICS_SERVER_PORT, protocol: TCP}]
---
# Endpoints, not an EndpointSlice: the controller-manager mirrors a selectorless Service's
# Endpoints into an EndpointSlice, so the aggregator finds the host either way.
apiVersion: v1
kind: Endpoints
metadata: {name: metrics-server, namespace: kube-system, labels: {app.kubernetes.io/name: metrics-server}}
subsets: [{addresses: [{ip: "$NODE_IP"}], ports: [{name: https, port: $METRICS_SERVER_PORT, protocol: TCP}]}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io, labels: {app.kubernetes.io/name: metrics-server}}
spec:
  group: metrics.k8s.io
  version: v1beta1
  service: {name: metrics-server, namespace: kube-system, port: $METRICS_SERVER_PORT}
  caBundle: $ca_bundle
  groupPriorityMinimum: 100
  versionPriority: 100
YAML
)"
kubectl_ apply -f - >/dev/null 2>"$NODE_RUN/metrics-server-apply.err" <<<"$registration" \
  || die "registering metrics-server failed: $(cat "$NODE_RUN/metrics-server-apply.err")"

available() {
  [[ "$(kubectl_ get apiservice v1beta1.metrics.k8s.io \
    -o jsonpath='{.status.conditions[?(@.type=="Available")].status}')" == "True" ]]
}
wait_for "APIService v1beta1.metrics.k8s.io Available (see $NODE_LOGS/metrics-server.log)" 90 available
# The first scrape lands one resolution period after start; until then `kubectl top` has nothing.
wait_for "the first node metrics" 90 kubectl_ get --raw "/apis/metrics.k8s.io/v1beta1/nodes/$NODE_NAME"
log "metrics-server serving the Metrics API (v1beta1.metrics.k8s.io)"
