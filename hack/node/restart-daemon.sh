#!/usr/bin/env bash
# restart-daemon.sh NAME [DOWN_SECONDS]: stop one process of the running real node (SIGTERM, then
# SIGKILL after 20 s), leave it down for DOWN_SECONDS (default 0), start it again with the same
# command line and wait until it answers again (the API server: /readyz). For fault tests.
source "$(dirname "$0")/lib.sh"

name="${1:?usage: restart-daemon.sh NAME [DOWN_SECONDS]}" down_s="${2:-0}"
pid="$(daemon_pid "$name")" || die "$name is not running (no live pid in $NODE_RUN/pids/$name)"
# Running and not a zombie: the daemons' parent is gone, and whatever adopted them may never reap.
alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat%% *}" != Z ]]
}
mapfile -d '' argv <"/proc/$pid/cmdline"
kill -TERM "$pid"
for _ in $(seq 200); do
  alive "$pid" || break
  sleep 0.1
done
if alive "$pid"; then kill -KILL "$pid"; fi
while alive "$pid"; do sleep 0.1; done
log "stopped $name (pid $pid)"
sleep "$down_s"
start_daemon "$name" "${argv[@]}"
if [[ "$name" == kube-apiserver ]]; then
  wait_for "kube-apiserver /readyz" 120 "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" get --raw /readyz
fi
