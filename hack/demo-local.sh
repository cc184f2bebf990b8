#!/usr/bin/env bash
# The no-Docker path of `make demo` (hack/demo.sh picks it when hack/demo-kind.sh cannot run).
#
# What runs where:
#   - the local control plane of hack/cluster.sh: etcd, kube-apiserver, kube-controller-manager,
#     kube-scheduler and kwok as processes on 127.0.0.1, with two kwok FAKE nodes. It stores and
#     reconciles real Kubernetes objects, but its pods run no containers.
#   - the operator as a local process (`mlserving operator`) talking to that API server: it
#     reconciles examples/fraud-ab.yaml into Deployments, Services, the routing ConfigMap, ...
#     and reports Ready. (deploy/'s operator Deployment cannot run here: no containers.)
#   - for real predictions: two `mlserving serve` processes and one `mlserving router` on
#     127.0.0.1, the router reading the routing table the operator wrote, with each variant's
#     in-cluster URL replaced by its local server's URL.
#
# Env: MODELS (default models/), SAMPLES (training rows, default 10000), DEMO_REQUESTS (default
# 1000), DEMO_NAMESPACE (default mlserving-demo), DEMO_PORT (router port, default 8080 or a free
# one), DEMO_READY_TIMEOUT (seconds for the ModelDeployment to turn Ready, default 300: a busy
# machine slows the control plane down), DEMO_KEEP=1 (leave the cluster and the processes up,
# and print how to explore and stop).
set -euo pipefail
cd "$(dirname "$0")/.."

MLSERVING=${MLSERVING:-.venv/bin/mlserving}
PY=${PY:-.venv/bin/python}
MODELS=${MODELS:-models}
SAMPLES=${SAMPLES:-10000}
REQUESTS=${DEMO_REQUESTS:-1000}
NAMESPACE=${DEMO_NAMESPACE:-mlserving-demo}
KEEP=${DEMO_KEEP:-0}
READY_TIMEOUT=${DEMO_READY_TIMEOUT:-300}
EXAMPLE=examples/fraud-ab.yaml
MD=$(awk '/^metadata:/{m=1} m && /^  name:/{print $2; exit}' "$EXAMPLE")
MODEL=$(awk '/^spec:/{s=1} s && /^  model:/{print $2; exit}' "$EXAMPLE")
SAMPLE='{"features": [0.52, -1.21, 0.33, 1.74, -0.68, 0.05, 2.11, -0.94, 0.27, 1.38, -0.45, 0.81, -1.67, 0.12, 0.99, -0.23, 1.05, -0.71, 0.64, -1.02], "request_id": "demo-0001"}'

PLANE="local control plane (etcd + kube-apiserver + controllers on 127.0.0.1, 2 kwok fake nodes: objects are real, pods run no containers)"
LOCAL="local processes on 127.0.0.1"
step=0
say() {  # say WHERE WHAT
	step=$((step + 1))
	printf '\n==> [%d] %s\n    where: %s\n' "$step" "$2" "$1"
}
die() { echo "demo: error: $*" >&2; exit 1; }

[[ -x $MLSERVING && -x $PY ]] || die "$MLSERVING or $PY missing: run \`make demo\` (it creates .venv) or \`make venv\`"
[[ $REQUESTS =~ ^[0-9]+$ && $REQUESTS -ge 1 ]] || die "DEMO_REQUESTS: must be a positive integer, got '$REQUESTS'"
[[ $READY_TIMEOUT =~ ^[0-9]+$ && $READY_TIMEOUT -ge 1 ]] || die "DEMO_READY_TIMEOUT: must be a positive integer (seconds), got '$READY_TIMEOUT'"
[[ -n $MD && -n $MODEL ]] || die "$EXAMPLE: could not read metadata.name and spec.model"

WORK=$(mktemp -d -t mlserving-demo.XXXXXX)
PIDS=()            # local processes this script started, stopped on exit
CLUSTER_STARTED=0  # 1 when this script started the control plane (then it stops it, too)
NS_CREATED=0
FAILED=1

free_port() {
	"$PY" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

port_free() {
	"$PY" -c 'import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1"
}

# A process's log, shown when it is the reason for a failure.
show_log() { echo "--- last lines of $1 ---" >&2; tail -n 30 "$1" >&2 || true; }

start() {  # start NAME LOG CMD...: run CMD in the background, remember its pid
	local name=$1 log=$2
	shift 2
	"$@" >"$log" 2>&1 &
	PIDS+=($!)
	echo "    started $name (pid $!, log $log)"
}

wait_ready() {  # wait_ready NAME URL PID LOG
	local name=$1 url=$2 pid=$3 log=$4 i
	for i in $(seq 1 300); do
		curl -sf "$url" >/dev/null 2>&1 && { echo "    $name ready: $url"; return 0; }
		kill -0 "$pid" 2>/dev/null || { show_log "$log"; die "$name (pid $pid) exited before it was ready"; }
		sleep 0.2
	done
	show_log "$log"
	die "$name not ready after 60 s ($url)"
}

cleanup() {
	local status=$? pid
	trap - EXIT INT TERM
	if [[ $KEEP == 1 && $FAILED == 0 ]]; then
		keep_report
		return
	fi
	echo
	echo "==> cleanup"
	if ((${#PIDS[@]})); then
		kill "${PIDS[@]}" 2>/dev/null || true
		for _ in $(seq 1 50); do
			local left=0
			for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
			((left)) || break
			sleep 0.2
		done
		kill -9 "${PIDS[@]}" 2>/dev/null || true
		wait "${PIDS[@]}" 2>/dev/null || true
		echo "    stopped the local processes (pids ${PIDS[*]})"
	fi
	if ((CLUSTER_STARTED)); then
		if live_pytest_sessions; then
			echo "    local control plane left running: a pytest session started using it meanwhile"
		else
			hack/cluster.sh down >/dev/null 2>&1 && echo "    stopped the local control plane (this demo started it)" ||
				echo "    hack/cluster.sh down failed: run it yourself"
		fi
	else
		if ((NS_CREATED)); then
			kubectl delete namespace "$NAMESPACE" --wait=false >/dev/null 2>&1 || true
			echo "    deleted namespace $NAMESPACE (the ModelDeployment and its children go with it)"
		fi
		echo "    local control plane left running: it was running before the demo"
	fi
	if ((status != 0)); then
		echo "    logs kept in $WORK"
	else
		rm -rf "$WORK"
	fi
	echo "    kept: the trained models in $MODELS/"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# tests/conftest.py registers its sessions there; stopping the cluster under one would break it.
live_pytest_sessions() {
	local state f
	state=$(dirname "$KUBECONFIG")
	for f in "$state"/pytest-sessions/*; do
		[[ -e $f ]] && kill -0 "$(basename "$f" | cut -d- -f1)" 2>/dev/null && return 0
	done
	return 1
}

keep_report() {
	cat <<EOF

==> DEMO_KEEP=1: everything stays up
    router:            http://127.0.0.1:$ROUTER_PORT/predict   (table: $WORK/routing.json, re-read on change)
    servers:           $(for i in "${!VARIANTS[@]}"; do printf '%s http://127.0.0.1:%s  ' "${VARIANTS[$i]}" "${SERVER_PORTS[$i]}"; done)
    operator and logs: $WORK
    explore:           eval "\$(hack/cluster.sh env)"; kubectl get modeldeployments,all,configmaps -n $NAMESPACE
                       curl -si http://127.0.0.1:$ROUTER_PORT/predict -H 'content-type: application/json' -H 'x-user-id: alice' -d '$SAMPLE'
    shift traffic:     kubectl patch md $MD -n $NAMESPACE --type=json -p '[{"op":"replace","path":"/spec/variants/0/weight","value":50},{"op":"replace","path":"/spec/variants/1/weight","value":50}]'
                       (the follower copies the new table to the router: $WORK/follow-table.log)
    stop:              kill ${PIDS[*]}; $( ((CLUSTER_STARTED)) && echo "hack/cluster.sh down" || echo "kubectl delete namespace $NAMESPACE")
EOF
}

# --- 1. models ----------------------------------------------------------------------------------
say "this machine (mlserving train, files under $MODELS/)" "train $MODEL 1.0.0 and 2.0.0 (different seeds, so the two versions answer differently)"
train() {  # version seed
	if [[ -f $MODELS/$MODEL/$1/metadata.json ]]; then
		echo "    $MODELS/$MODEL/$1 exists: not retraining (mlserving train --force would)"
	else
		echo "    training $MODEL $1 (seed $2, $SAMPLES rows)"
		"$MLSERVING" train --model "$MODEL" --version "$1" --seed "$2" --samples "$SAMPLES" --out "$MODELS" |
			sed 's/^/    /'
	fi
}
train 1.0.0 42
train 2.0.0 7

# --- 2. control plane ---------------------------------------------------------------------------
say "$PLANE" "start the local Kubernetes control plane (hack/cluster.sh)"
eval "$(hack/cluster.sh env)"
if hack/cluster.sh status >/dev/null 2>&1; then
	echo "    a control plane is already running ($KUBECONFIG): reusing it, and leaving it running afterwards"
	hack/cluster.sh up
else
	missing=$(hack/cluster.sh missing | tr '\n' ' ')
	if [[ -n $missing ]]; then
		if command -v go >/dev/null; then
			echo "    not cached yet: ${missing}- building them from source with Go now: about 30 minutes the first time"
		else
			echo "    not cached yet: ${missing}- and Go is not installed: hack/cluster.sh explains what to do"
		fi
	else
		echo "    binaries cached ($(dirname "$(command -v kubectl)")); starting the processes"
	fi
	CLUSTER_STARTED=1
	hack/cluster.sh up
fi
kubectl get nodes | sed 's/^/    /'

# --- 3. CRD, operator, the A/B example ----------------------------------------------------------
say "$PLANE" "install the ModelDeployment CRD (kubectl apply -k crds/)"
kubectl apply -k crds/ | sed 's/^/    /'
kubectl wait --for=condition=Established crd/modeldeployments.mlserving.io --timeout=60s | sed 's/^/    /'

if kubectl get namespace "$NAMESPACE" >/dev/null 2>&1; then
	echo "    namespace $NAMESPACE exists already: using it (and leaving it)"
else
	kubectl create namespace "$NAMESPACE" | sed 's/^/    /'
	NS_CREATED=1
fi

say "$LOCAL (mlserving operator, talking to the local API server)" "run the operator"
echo "    deploy/'s operator Deployment cannot run here: kwok's fake nodes run no containers, so the"
echo "    operator runs as a local process with the cluster's kubeconfig, watching namespace $NAMESPACE"
OPERATOR_LOG=$WORK/operator.log
start operator "$OPERATOR_LOG" env MLSERVING_LEASE_NAMESPACE="$NAMESPACE" POD_NAME="demo-$(hostname)-$$" \
	"$MLSERVING" operator --namespace "$NAMESPACE" --kubeconfig "$KUBECONFIG"
OPERATOR_PID=${PIDS[-1]}

say "$PLANE" "apply $EXAMPLE and wait for Ready"
kubectl apply -n "$NAMESPACE" -f "$EXAMPLE" | sed 's/^/    /'
echo "    (seconds on an idle machine; a minute or more when other work keeps the control plane busy)"
ready_start=$SECONDS
if ! kubectl wait --for=condition=Ready "modeldeployment/$MD" -n "$NAMESPACE" --timeout="${READY_TIMEOUT}s" | sed 's/^/    /'; then
	kubectl get modeldeployment "$MD" -n "$NAMESPACE" -o yaml >&2 || true
	echo "--- warning events in $NAMESPACE (a full node says 'Too many pods') ---" >&2
	kubectl get events -n "$NAMESPACE" --field-selector type=Warning >&2 || true
	kill -0 "$OPERATOR_PID" 2>/dev/null || echo "demo: the operator exited" >&2
	show_log "$OPERATOR_LOG"
	die "modeldeployment/$MD did not become Ready within $READY_TIMEOUT s (DEMO_READY_TIMEOUT)"
fi
echo "    Ready after $((SECONDS - ready_start)) s"
echo
echo "    \$ kubectl get modeldeployments -n $NAMESPACE"
kubectl get modeldeployments -n "$NAMESPACE" | sed 's/^/    /'
echo
echo "    what the operator created (pods are objects on the kwok fake nodes, no containers):"
echo "    \$ kubectl get deployments,services,pods -n $NAMESPACE -o wide"
kubectl get deployments,services,pods -n "$NAMESPACE" -o wide | sed 's/^/    /'
echo
echo "    \$ kubectl get configmap $MD-routing -n $NAMESPACE -o jsonpath='{.data.routing\\.json}'"
kubectl get configmap "$MD-routing" -n "$NAMESPACE" -o jsonpath='{.data.routing\.json}' >"$WORK/routing-cluster.json"
[[ -s $WORK/routing-cluster.json ]] || die "configmap $MD-routing has no routing.json"
"$PY" -m json.tool "$WORK/routing-cluster.json" | sed 's/^/    /'

# The operator's table ($WORK/routing-cluster.json) with each variant's in-cluster URL replaced by
# its local server's URL (MAP_ARGS: name=url), written atomically to $WORK/routing.json.
local_table() {
	"$PY" - "$WORK/routing-cluster.json" "$WORK/routing.json" "${MAP_ARGS[@]}" <<'EOF'
import json, os, sys
src, dst, pairs = sys.argv[1], sys.argv[2], dict(a.split("=", 1) for a in sys.argv[3:])
table = json.load(open(src))
for v in table["variants"]:
    if v["name"] not in pairs:
        sys.exit(f"demo: error: the table names variant {v['name']!r}, which has no local server")
    print(f"      {v['name']}: {v['url']} -> {pairs[v['name']]}")
    v["url"] = pairs[v["name"]]
with open(dst + ".tmp", "w") as fh:
    json.dump(table, fh)
os.replace(dst + ".tmp", dst)
EOF
}

# DEMO_KEEP: follow the operator's ConfigMap, so `kubectl patch md` weight changes reach the local router.
follow_table() {
	while sleep 2; do
		kubectl get configmap "$MD-routing" -n "$NAMESPACE" -o jsonpath='{.data.routing\.json}' \
			>"$WORK/routing-cluster.new" 2>/dev/null || continue
		[[ -s $WORK/routing-cluster.new ]] || continue
		cmp -s "$WORK/routing-cluster.new" "$WORK/routing-cluster.json" && continue
		mv "$WORK/routing-cluster.new" "$WORK/routing-cluster.json"
		echo "$(date +%T) the operator rewrote $MD-routing: $(cat "$WORK/routing-cluster.json")"
		local_table
	done
}

# --- 4. real predictions ------------------------------------------------------------------------
say "$LOCAL (mlserving serve x2, mlserving router)" "serve both versions and route between them for real predictions"
# name version, one line per variant of the operator's table
mapfile -t LINES < <("$PY" -c 'import json, sys
for v in json.load(open(sys.argv[1]))["variants"]:
    print(v["name"], v["version"])' "$WORK/routing-cluster.json")
VARIANTS=()
SERVER_PORTS=()
SERVER_PIDS=()
MAP_ARGS=()
for line in "${LINES[@]}"; do
	read -r name version <<<"$line"
	path=$MODELS/$MODEL/$version
	[[ -f $path/metadata.json ]] || die "variant $name wants $MODEL $version, but $path/metadata.json does not exist"
	port=$(free_port)
	start "server $name ($MODEL $version)" "$WORK/server-$name.log" \
		"$MLSERVING" serve --model-path "$path" --host 127.0.0.1 --port "$port" --log-level warning \
		--metrics-port "$(free_port)"  # each local process its own: the default 9090 is one per machine
	VARIANTS+=("$name")
	SERVER_PORTS+=("$port")
	SERVER_PIDS+=("${PIDS[-1]}")
	MAP_ARGS+=("$name=http://127.0.0.1:$port")
done
for i in "${!VARIANTS[@]}"; do
	wait_ready "server ${VARIANTS[$i]}" "http://127.0.0.1:${SERVER_PORTS[$i]}/health/ready" \
		"${SERVER_PIDS[$i]}" "$WORK/server-${VARIANTS[$i]}.log"
done

echo "    the router's table: the operator's routing.json with each in-cluster URL replaced by the"
echo "    local server's URL (weights, order and sticky header as the operator wrote them):"
local_table
ROUTER_PORT=${DEMO_PORT:-8080}
port_free "$ROUTER_PORT" || { echo "    port $ROUTER_PORT is taken: using a free one"; ROUTER_PORT=$(free_port); }
start router "$WORK/router.log" "$MLSERVING" router --config "$WORK/routing.json" \
	--host 127.0.0.1 --port "$ROUTER_PORT" --log-level warning --metrics-port "$(free_port)"
wait_ready router "http://127.0.0.1:$ROUTER_PORT/health/ready" "${PIDS[-1]}" "$WORK/router.log"
if [[ $KEEP == 1 ]]; then
	echo "    DEMO_KEEP=1: a loop copies each new $MD-routing into the router's table (every 2 s),"
	echo "    so a weight change with kubectl patch reaches the local router as well"
	start "table follower" "$WORK/follow-table.log" follow_table
fi

say "$LOCAL (client -> router -> servers)" "the sample prediction, $REQUESTS requests for the split, sticky clients"
"$PY" - "http://127.0.0.1:$ROUTER_PORT" "$WORK/routing.json" "$REQUESTS" "$SAMPLE" <<'EOF'
import collections, json, sys
import httpx

base, table, n, sample = sys.argv[1], json.load(open(sys.argv[2])), int(sys.argv[3]), json.loads(sys.argv[4])
url = f"{base}/predict"
header = table["stickyHeader"]
versions = {v["name"]: v["version"] for v in table["variants"]}


def fail(msg):
    sys.exit(f"demo: error: {msg}")


with httpx.Client(timeout=10) as client:
    r = client.post(url, json=sample)
    if r.status_code != 200:
        fail(f"POST {url} -> {r.status_code}: {r.text}")
    variant, version = r.headers.get("x-mlserving-variant"), r.headers.get("x-model-version")
    print(f"    $ curl -si {url} -H 'content-type: application/json' -d '<the sample>'")
    print(f"    HTTP {r.status_code}  x-mlserving-variant: {variant}  x-model-version: {version}")
    print(f"    {r.text}")
    if versions.get(variant) != version:
        fail(f"variant {variant} answered with x-model-version {version}, the table says {versions.get(variant)}")

    counts, seen_versions = collections.Counter(), collections.defaultdict(set)
    for _ in range(n):
        r = client.post(url, json={"features": sample["features"]})
        if r.status_code != 200:
            fail(f"POST {url} -> {r.status_code}: {r.text}")
        name = r.headers["x-mlserving-variant"]
        counts[name] += 1
        seen_versions[name].add(r.headers["x-model-version"])
    print(f"\n    observed split over {n} requests (no {header} header: each request drawn by weight):")
    for v in table["variants"]:
        got = counts[v["name"]]
        print(f"      {v['name']:<12} version {v['version']:<8} weight {v['weight']:>3}%   "
              f"observed {100 * got / n:5.1f}%  ({got} requests)")
    for name, vs in seen_versions.items():
        if vs != {versions[name]}:
            fail(f"variant {name} answered with versions {sorted(vs)}, the table says {versions[name]}")

    if header:
        # Find users the table pins to each live variant (1 request each), then check they stay.
        live = [v["name"] for v in table["variants"] if v["weight"] > 0 and not v["mirror"]]
        chosen = {name: [] for name in live}
        for i in range(1, 201):
            user = f"user-{i}"
            name = client.post(url, json={"features": sample["features"]},
                               headers={header: user}).headers["x-mlserving-variant"]
            if len(chosen.get(name, [1, 2])) < 2:
                chosen[name].append(user)
            if all(len(users) == 2 for users in chosen.values()):
                break
        print(f"\n    sticky: the same {header} always reaches the same variant (5 requests each):")
        for users in chosen.values():
            for user in users:
                got = [client.post(url, json={"features": sample["features"]}, headers={header: user})
                       .headers["x-mlserving-variant"] for _ in range(5)]
                print(f"      {header}: {user:<8} -> {', '.join(got)}")
                if len(set(got)) != 1:
                    fail(f"{header}: {user} reached several variants: {got}")
EOF

FAILED=0
echo
echo "==> done in $SECONDS s. Where it ran:"
echo "    Kubernetes objects (CRD, ModelDeployment $MD Ready, Deployments, Services, routing ConfigMap):"
echo "      the $PLANE"
echo "    operator, both model servers and the router: $LOCAL"
