#!/usr/bin/env bash
# network.sh up|down: the node bridge with the node address, and the kernel switches pods need.
source "$(dirname "$0")/lib.sh"

sysctls=(net/ipv4/ip_forward net/bridge/bridge-nf-call-iptables)

case "${1:-up}" in
up)
  if ! ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    ip link add "$NODE_BRIDGE" type bridge
  fi
  ip addr replace "$NODE_IP/${POD_CIDR#*/}" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  [[ -e /proc/sys/net/bridge ]] || modprobe br_netfilter 2>/dev/null || true
  mkdir -p "$NODE_STATE/sysctl-saved"
  for s in "${sysctls[@]}"; do
    [[ -e /proc/sys/$s ]] || die "/proc/sys/$s is missing: the kernel lacks ${s%%/*} support"
    saved="$NODE_STATE/sysctl-saved/${s//\//.}"
    [[ -f "$saved" ]] || cat "/proc/sys/$s" >"$saved"
    # ip_forward: pods reach Services and each other through the host; bridge-nf-call-iptables:
    # traffic between two pods on the same bridge must still pass kube-proxy's DNAT rules.
    echo 1 >"/proc/sys/$s"
  done
  ;;
down)
  # veths of pods still attached (their netns died with the pods) go with the bridge's ports.
  for port in $(ip -o link show master "$NODE_BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link delete "$port" 2>/dev/null || true
  done
  ip link delete "$NODE_BRIDGE" 2>/dev/null || true
  for s in "${sysctls[@]}"; do
    saved="$NODE_STATE/sysctl-saved/${s//\//.}"
    if [[ -f "$saved" ]]; then cat "$saved" >"/proc/sys/$s"; rm -f "$saved"; fi
  done
  ;;
*) die "usage: network.sh up|down" ;;
esac
