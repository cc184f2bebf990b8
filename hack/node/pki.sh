#!/usr/bin/env bash
# Certificates and kubeconfigs for the real-node control plane (kept across up/down; regenerated
# only when missing). One CA signs the serving cert of the API server and every client cert.
source "$(dirname "$0")/lib.sh"

pki="$NODE_STATE/pki"
mkdir -p "$pki"
cd "$pki" || exit 1

if [[ ! -f ca.crt ]]; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
    -subj "/CN=mlserving-node-ca" 2>/dev/null
fi
# The aggregation layer's own CA: the API server proxies to extension API servers (metrics-server)
# with a client cert of this CA, and they trust the X-Remote-User headers only from that cert.
if [[ ! -f front-proxy-ca.crt ]]; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout front-proxy-ca.key -out front-proxy-ca.crt -days 3650 \
    -subj "/CN=mlserving-node-front-proxy-ca" 2>/dev/null
fi
# Service-account token signing pair.
if [[ ! -f sa.key ]]; then
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
fi

# issue NAME SUBJECT EXT [CA]: key + cert signed by CA (default: the cluster CA).
issue() {
  local name="$1" subj="$2" ext="$3" ca="${4:-ca}"
  [[ -f "$name.crt" ]] && return 0
  openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subj" 2>/dev/null
  printf '%s\n' "$ext" >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA "$ca.crt" -CAkey "$ca.key" -CAcreateserial -days 3650 \
    -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}
client_ext="basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"

issue apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$NODE_IP,IP:$KUBERNETES_SERVICE_IP,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN"
issue admin "/O=system:masters/CN=mlserving-admin" "$client_ext"
issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client_ext"
issue kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "$client_ext"
issue kube-proxy "/CN=system:kube-proxy" "$client_ext"
issue controller-manager "/CN=system:kube-controller-manager" "$client_ext"
issue scheduler "/CN=system:kube-scheduler" "$client_ext"
issue coredns "/CN=mlserving:coredns" "$client_ext"
# metrics-server: its identity towards the API server and the kubelet, and its serving cert for
# the name the aggregator verifies (<service>.<namespace>.svc).
issue metrics-server "/CN=mlserving:metrics-server" "$client_ext"
issue metrics-server-serving "/CN=metrics-server.kube-system.svc" "basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:metrics-server.kube-system.svc,DNS:metrics-server.kube-system.svc.$CLUSTER_DOMAIN,IP:$NODE_IP"
# The kubelet's serving cert from the cluster CA (not a self-signed one), so metrics-server
# verifies the kubelet it scrapes.
issue kubelet-serving "/CN=$NODE_NAME" "basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$NODE_IP,DNS:$NODE_NAME"
issue front-proxy-client "/CN=front-proxy-client" "$client_ext" front-proxy-ca
issue kube-router "/CN=mlserving:kube-router" "$client_ext"

# kubeconfig NAME: a kubeconfig that authenticates with NAME.crt.
kubeconfig() {
  local name="$1"
  cat >"$name.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: mlserving-node
  cluster:
    server: $APISERVER_URL
    certificate-authority: $pki/ca.crt
users:
- name: $name
  user:
    client-certificate: $pki/$name.crt
    client-key: $pki/$name.key
contexts:
- name: mlserving-node
  context: {cluster: mlserving-node, user: $name}
current-context: mlserving-node
KC
}
for n in admin kubelet kube-proxy controller-manager scheduler coredns metrics-server kube-router; do kubeconfig "$n"; done
chmod 600 ./*.key
