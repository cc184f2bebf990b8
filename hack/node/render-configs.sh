#!/usr/bin/env bash
# Write the configuration of containerd, CNI, kubelet, kube-proxy and CoreDNS for this node.
source "$(dirname "$0")/lib.sh"

conf="$NODE_STATE/config"
mkdir -p "$conf" "$NODE_STATE/cni/net.d"

# put FILE < content: replace FILE only when the content differs. kube-proxy exits as soon as its
# config file changes, so an `up` that reuses running daemons must not touch unchanged files.
put() {
  local tmp
  tmp="$(mktemp "$1.XXXXXX")"; chmod 644 "$tmp"
  cat >"$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; fi
}

put "$conf/containerd.toml" <<TOML
# containerd 1.6 (Debian) with its CRI plugin, on state dirs of its own so a system containerd,
# if any, is untouched.
version = 2
root = "$NODE_STATE/containerd"
state = "$NODE_RUN/containerd"
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  # Built locally by hack/images/pause.sh: nothing can be pulled from a registry here.
  sandbox_image = "$SANDBOX_IMAGE"
  # This VM's root lacks CAP_SYS_RESOURCE (not even in the bounding set), so no process may lower
  # an oom_score_adj: the -998 containerd gives every sandbox (and -997 for Guaranteed pods) made
  # runc fail with "can't get final child's PID from pipe: EOF". Clamp to containerd's own value.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # Must match the kubelet's cgroupDriver: there is no systemd on these VMs.
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_STATE/cni/net.d"
[plugins."io.containerd.internal.v1.opt"]
  path = "$NODE_STATE/containerd-opt"
TOML

# One bridge for the node address and the pods; host-local IPAM hands out the pod CIDR.
put "$NODE_STATE/cni/net.d/10-mlserving.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "mlserving",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$NODE_STATE/cni/ipam"
      }
    }
  ]
}
JSON

put "$conf/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# These VMs run cgroup v1, and kubelet 1.35 refuses to start on it unless told otherwise.
failCgroupV1: false
# No systemd here (PID 1 is the VM's init), so cgroups are managed directly; matches containerd.
cgroupDriver: cgroupfs
# The VM has no swap; say so explicitly rather than rely on detection, and never refuse over it.
failSwapOn: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
address: $NODE_IP
port: 10250
readOnlyPort: 0
# Serving cert from the cluster CA (hack/node/pki.sh): metrics-server verifies it when it scrapes.
tlsCertFile: $NODE_STATE/pki/kubelet-serving.crt
tlsPrivateKeyFile: $NODE_STATE/pki/kubelet-serving.key
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $NODE_STATE/pki/ca.crt}
authorization:
  mode: Webhook
clusterDomain: $CLUSTER_DOMAIN
clusterDNS: [$CLUSTER_DNS_IP]
podCIDR: $POD_CIDR
podLogsDir: $NODE_STATE/pod-logs
# Images are imported locally and cannot be pulled again: never garbage-collect them, and do not
# evict pods over a disk that CI shares with builds.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
  nodefs.inodesFree: "1%"
serializeImagePulls: false
registerNode: true
rotateCertificates: false
staticPodPath: ""
YAML

put "$conf/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: $NODE_STATE/pki/kube-proxy.kubeconfig
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [primary]   # NodePorts only on the node address, not on every local IP
conntrack:
  # 0 = leave the kernel's conntrack sysctls as they are (the VM may not allow changing them).
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
YAML

put "$conf/Corefile" <<COREFILE
.:53 {
    bind $CLUSTER_DNS_IP
    errors
    health 127.0.0.1:18080
    ready 127.0.0.1:18181
    kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
        kubeconfig $NODE_STATE/pki/coredns.kubeconfig mlserving-node
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
    reload
}
COREFILE
