#!/usr/bin/env bash
# hack/node/down.sh [--purge]: stop everything hack/node/up.sh started and remove what it made:
# pods and their sandboxes, processes, veths and the bridge, iptables chains, mounts, cluster state.
# Kept for a faster next start: certificates and containerd's image store (--purge removes them too).
source "$(dirname "$0")/lib.sh"
shopt -s globstar nullglob

purge=0
[[ "${1:-}" == "--purge" ]] && purge=1

running() { daemon_pid "$1" >/dev/null; }

# stop NAME [GRACE_S]: TERM the recorded pid, KILL after the grace period.
stop() {
  local name="$1" grace="${2:-15}" pid
  if pid="$(daemon_pid "$name")"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) ignored TERM for ${grace}s; killing"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $name (pid $pid)"
  fi
  rm -f "$NODE_RUN/pids/$name"
}

# 1. Let the kubelet tear pods down properly (CNI DEL, netns, volume mounts) while it still runs.
#    Controllers and the scheduler go first so nothing is recreated meanwhile.
stop kube-controller-manager
stop kube-scheduler
stop metrics-server
if running kube-apiserver && running kubelet; then
  "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" delete pods --all --all-namespaces \
    --grace-period=5 --timeout=90s --wait=true >/dev/null 2>&1 \
    || log "some pods were not deleted through the API; removing their containers directly"
fi
stop kubelet 30
stop kube-router
stop kube-proxy
stop coredns

# 2. Whatever the kubelet left: kill and remove containers through containerd itself.
if running containerd; then
  for ns in k8s.io default; do
    for task in $(ctr --address "$CONTAINERD_SOCK" -n "$ns" tasks ls -q 2>/dev/null); do
      ctr --address "$CONTAINERD_SOCK" -n "$ns" tasks kill -s KILL "$task" >/dev/null 2>&1 || true
    done
    sleep 0.5
    for task in $(ctr --address "$CONTAINERD_SOCK" -n "$ns" tasks ls -q 2>/dev/null); do
      ctr --address "$CONTAINERD_SOCK" -n "$ns" tasks delete -f "$task" >/dev/null 2>&1 || true
    done
    for c in $(ctr --address "$CONTAINERD_SOCK" -n "$ns" containers ls -q 2>/dev/null); do
      ctr --address "$CONTAINERD_SOCK" -n "$ns" containers delete "$c" >/dev/null 2>&1 || true
    done
  done
fi
stop containerd 20
stop kube-apiserver
stop etcd

# containerd's shims outlive it by design; find ours by the socket path on their command line.
for p in /proc/[0-9]*; do
  if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- "-address $CONTAINERD_SOCK"; then
    kill -KILL "${p#/proc/}" 2>/dev/null && log "killed leftover shim ${p#/proc/}"
  fi
done

# Pod processes whose shim died with a killed session sit in the kubelet's cgroups: kill them,
# then remove the cgroup tree the kubelet made (kubepods, one per v1 controller).
for procs in /sys/fs/cgroup/*/kubepods/cgroup.procs /sys/fs/cgroup/*/kubepods/**/cgroup.procs; do
  [[ -f "$procs" ]] || continue
  while read -r pid; do
    [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null && log "killed leftover pod process $pid"
  done <"$procs"
done
for tree in /sys/fs/cgroup/*/kubepods; do
  [[ -d "$tree" ]] && find "$tree" -depth -type d -exec rmdir {} + 2>/dev/null
  [[ -d "$tree" ]] && log "could not remove cgroup $tree (processes still in it?)"
done

# 3. iptables: kube-proxy's own cleanup, then any KUBE-*/CNI-* chain (kube-router's KUBE-ROUTER-*,
#    KUBE-POD-FW-*, KUBE-NWPLCY-* too) and every rule jumping to one
#    (the kubelet's canary chains, CNI's) in both the nft and legacy backends, IPv4 and IPv6.
if [[ -x "$K8S_BIN/kube-proxy" ]]; then
  "$K8S_BIN/kube-proxy" --cleanup --v=0 >/dev/null 2>&1 || true
fi
purge_chains() {
  local save="$1" restore="$2" dump
  command -v "$save" >/dev/null 2>&1 || return 0
  dump="$("$save" 2>/dev/null)" || return 0
  grep -qE '(^:|-[jg] |^-A )(KUBE-|CNI-)' <<<"$dump" || return 0
  grep -vE '^:(KUBE-|CNI-)|^-A (KUBE-|CNI-)|-[jg] (KUBE-|CNI-)' <<<"$dump" | "$restore"
  log "removed KUBE-*/CNI-* chains via $restore"
}
for fam in iptables ip6tables; do
  purge_chains "$fam-nft-save" "$fam-nft-restore"
  purge_chains "$fam-legacy-save" "$fam-legacy-restore"
done

# The NetworkPolicy enforcer's ipsets (KUBE-SRC-*/KUBE-DST-*, their TMP- and inet6: variants),
# now that no rule refers to them.
if command -v ipset >/dev/null 2>&1; then
  for set in $(ipset list -n 2>/dev/null | grep -E '^(inet6:)?(TMP-)?KUBE-(SRC|DST)-'); do
    ipset destroy "$set" 2>/dev/null || log "could not destroy ipset $set"
  done
fi

# 4. Mounts left under our directories (volume tmpfs, rootfs overlays, sandbox shm) and the pod
#    network namespaces this node created.
while read -r target; do
  umount -l "$target" 2>/dev/null && log "unmounted $target"
done < <(awk -v s="$NODE_STATE/" -v r="$NODE_RUN/" 'index($5, s) == 1 || index($5, r) == 1 {print $5}' \
           /proc/self/mountinfo | sort -r)
if [[ -f "$NODE_RUN/netns-before" ]]; then
  for ns in /run/netns/cni-*; do
    [[ -e "$ns" ]] || continue
    grep -qx "$(basename "$ns")" "$NODE_RUN/netns-before" && continue
    umount "$ns" 2>/dev/null || true
    rm -f "$ns" && log "removed netns $(basename "$ns")"
  done
fi

# 5. Bridge, veths, sysctls.
"$NODE_LIB_DIR/network.sh" down

# 6. Cluster state: a fresh etcd and kubelet next time.
rm -rf "$NODE_RUN" "$NODE_STATE/etcd" "$NODE_STATE/kubelet" "$NODE_STATE/pod-logs" \
  "$NODE_STATE/cni/ipam" "$NODE_STATE/containerd-opt" "$REPO_KUBECONFIG"
if ((purge)); then
  rm -rf "$NODE_STATE"
  log "purged $NODE_STATE"
fi
log "node down"
