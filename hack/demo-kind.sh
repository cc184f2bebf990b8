#!/usr/bin/env bash
# The Docker + kind path of `make demo`: a kind cluster (tests/e2e/kind.yaml), both images built
# and loaded, the operator installed with `kubectl apply -k deploy/`, the A/B example applied and
# Ready, then a sample prediction and the observed A/B split, both from a pod inside the cluster.
#
#   hack/demo-kind.sh available   exit 0 if Docker (a running engine), kind and kubectl are here,
#                                 else print why and exit 1 (hack/demo.sh picks its path with it)
#   hack/demo-kind.sh [up]        run the demo; the cluster stays up for you to explore
#   hack/demo-kind.sh down        delete the demo cluster
#
# MLSERVING_DEMO_CLUSTER names the cluster (default mlserving-demo).
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER="${MLSERVING_DEMO_CLUSTER:-mlserving-demo}"
VERSION="$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"
SERVER_IMAGE="docker.io/mlserving/server:${VERSION}"
OPERATOR_IMAGE="docker.io/mlserving/operator:${VERSION}"
EXAMPLE=examples/fraud-ab.yaml
MD="$(awk '/^metadata:/{m=1} m && /^  name:/{print $2; exit}' "$EXAMPLE")"
NAMESPACE=mlserving-demo

say() { printf '\n==> %s\n' "$*"; }

available() {
  local missing=()
  for tool in docker kind kubectl; do
    command -v "$tool" >/dev/null || missing+=("$tool not on PATH")
  done
  if command -v docker >/dev/null && ! docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; then
    missing+=("docker info: no running Docker engine")
  fi
  if ((${#missing[@]})); then
    local reasons
    reasons="$(printf '%s; ' "${missing[@]}")"
    echo "kind demo unavailable: ${reasons%; }"
    return 1
  fi
}

up() {
  available
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    say "kind cluster $CLUSTER exists: reusing it"
  else
    say "creating kind cluster $CLUSTER (Kubernetes v1.35, tests/e2e/kind.yaml)"
    kind create cluster --name "$CLUSTER" --config tests/e2e/kind.yaml --wait 300s
  fi
  kubectl config use-context "kind-$CLUSTER" >/dev/null

  say "building $SERVER_IMAGE and $OPERATOR_IMAGE"
  docker build --file Dockerfile.server --tag "$SERVER_IMAGE" .
  docker build --file Dockerfile.operator --tag "$OPERATOR_IMAGE" .
  say "loading both images into the kind node"
  kind load docker-image --name "$CLUSTER" "$SERVER_IMAGE" "$OPERATOR_IMAGE"

  say "installing the CRD and the operator: kubectl apply -k deploy/"
  kubectl apply -k deploy/
  kubectl wait --for=condition=Established crd/modeldeployments.mlserving.io --timeout=60s
  kubectl wait --for=condition=Available deployment --all -n mlserving-system --timeout=300s

  say "applying $EXAMPLE in namespace $NAMESPACE"
  kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
  kubectl apply -n "$NAMESPACE" -f "$EXAMPLE"
  kubectl wait --for=condition=Ready "modeldeployment/$MD" -n "$NAMESPACE" --timeout=300s

  say "kubectl get modeldeployments -n $NAMESPACE"
  kubectl get modeldeployments -n "$NAMESPACE"

  say "a sample prediction and the observed split, from a pod inside the cluster"
  kubectl delete pod mlserving-demo-client -n "$NAMESPACE" --ignore-not-found --wait=true >/dev/null
  kubectl run mlserving-demo-client -n "$NAMESPACE" --rm -i --restart=Never --quiet \
    --image="$SERVER_IMAGE" --image-pull-policy=IfNotPresent \
    --env="URL=http://$MD.$NAMESPACE.svc.cluster.local/predict" \
    --command -- python3 -c '
import collections, os, httpx
url, body, n = os.environ["URL"], {"features": [0.1] * 20}, 1000
with httpx.Client(timeout=10) as client:
    r = client.post(url, json=body)
    variant, version = r.headers.get("x-mlserving-variant"), r.headers.get("x-model-version")
    print(f"POST {url} -> {r.status_code}, variant {variant}, x-model-version {version}")
    print(r.text)
    counts = collections.Counter(client.post(url, json=body).headers.get("x-mlserving-variant") for _ in range(n))
print(f"observed split over {n} requests: " + ", ".join(f"{k} {v / n:.1%}" for k, v in sorted(counts.items())))
'

  say "where it ran: kind cluster $CLUSTER (Docker) — operator, router and both variants are pods there"
  echo "explore: kubectl get all -n $NAMESPACE; remove: hack/demo-kind.sh down"
}

down() {
  if command -v kind >/dev/null && kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    kind delete cluster --name "$CLUSTER"
  else
    echo "no kind cluster $CLUSTER"
  fi
}

case "${1:-up}" in
  available) available ;;
  up) up ;;
  down) down ;;
  *) echo "usage: $0 [available|up|down]" >&2; exit 2 ;;
esac
