#!/usr/bin/env bash
# Which of the real node's processes run, and whether the node is Ready. Exit 0 only when all run
# and the node is Ready.
source "$(dirname "$0")/lib.sh"
ok=0
for name in containerd etcd kube-apiserver kube-controller-manager kube-scheduler coredns kubelet kube-proxy metrics-server kube-router; do
  if pid="$(daemon_pid "$name")"; then
    printf '%-24s running (pid %s)\n' "$name" "$pid"
  else
    printf '%-24s stopped\n' "$name"; ok=1
  fi
done
if ((ok == 0)); then
  ready="$("$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" get node "$NODE_NAME" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)"
  printf '%-24s %s\n' "node $NODE_NAME" "Ready=${ready:-unknown}"
  [[ "$ready" == "True" ]] || ok=1
fi
exit "$ok"
