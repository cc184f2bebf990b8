"""Probing a ModelDeployment's NetworkPolicies from client pods in other namespaces.

Shared by the real-node policy tests (tests/node/) and the e2e suites that rerun with policies on
(tests/e2e/test_ab.py, and the rollout suite through :func:`assert_policies_enforced`): a client
pod runs :data:`PROBE` with the server image's python, one verdict per target. Works with either
kubectl wrapper (the node's returns a CompletedProcess, the e2e cluster's the stdout).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from mlserving.operator import naming
from mlserving.operator.spec import MONITORING_LABEL

CONNECT_TIMEOUT = 3
CLIENT_POD = "client"
RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}

# Run inside a client pod: one probe per target, a JSON verdict per name on stdout.
PROBE = r"""
import json, socket, sys, urllib.error, urllib.request
T = float(sys.argv[2])
verdicts = {}
for name, kind, target, body in json.loads(sys.argv[1]):
    try:
        if kind == "tcp":
            host, port = target.rsplit(":", 1)
            socket.create_connection((host, int(port)), timeout=T).close()
            verdicts[name] = "open"
        else:
            req = urllib.request.Request(target, data=body and json.dumps(body).encode(),
                                         headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=T) as resp:
                verdicts[name] = resp.status
    except urllib.error.HTTPError as exc:
        verdicts[name] = exc.code
    except (OSError, urllib.error.URLError) as exc:
        verdicts[name] = "blocked: " + type(getattr(exc, "reason", exc)).__name__
print(json.dumps(verdicts))
"""


def namespace(name: str, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}


def client_pod(ns: str, image: str) -> dict:
    """A pod that only sleeps; probes run in it with ``kubectl exec``. Restricted-compliant."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": CLIENT_POD, "namespace": ns, "labels": {"app": "checkout"}},
        "spec": {
            "enableServiceLinks": False, "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "main", "image": image, "imagePullPolicy": "IfNotPresent",
                            "command": ["python3", "-c", "import time; time.sleep(3600)"],
                            "securityContext": RESTRICTED,
                            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}}],
        },
    }


def _stdout(result) -> str:
    return getattr(result, "stdout", result)


def run_in_client(kubectl: Callable, ns: str, *args: str) -> str:
    """stdout's last line of ``args`` run in the client pod of ``ns``."""
    return _stdout(kubectl("exec", "-n", ns, CLIENT_POD, "--", *args, timeout=60)).strip().splitlines()[-1]


def probe(kubectl: Callable, ns: str, targets: list[tuple]) -> dict:
    return json.loads(run_in_client(kubectl, ns, "python3", "-c", PROBE, json.dumps(targets), str(CONNECT_TIMEOUT)))


def eventually(check, timeout: float = 45.0):
    """The enforcer applies a policy change within seconds: retry ``check`` until it passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(2)


def blocked(verdict) -> bool:
    return str(verdict).startswith("blocked")


def payload() -> dict:
    from mlserving.training.data import FEATURE_NAMES

    return {"features": [0.1] * len(FEATURE_NAMES)}


def wait_client_ready(kubectl: Callable, ns: str, timeout: int = 120) -> None:
    kubectl("wait", "--for=condition=Ready", f"pod/{CLIENT_POD}", "-n", ns, f"--timeout={timeout}s",
            timeout=timeout + 20)


def running_pod_ip(pods: list[dict]) -> str:
    running = [p for p in pods if p["status"].get("podIP") and not p["metadata"].get("deletionTimestamp")
               and p["status"].get("phase") == "Running"]
    assert running, f"no running pod among {[p['metadata']['name'] for p in pods]}"
    return running[0]["status"]["podIP"]


def assert_policies_enforced(k, app_ns: str, md: str, variant: str, image: str,
                             model_pods: str | None = None) -> None:
    """In a running e2e cluster (``k``: tests/e2e/conftest.py's E2ECluster): the ModelDeployment
    ``md`` in ``app_ns`` has its NetworkPolicies, and they are enforced: a pod of an unlabelled
    namespace gets a prediction through the router but neither the serving nor the metrics port
    of a ``variant`` pod; a pod of a namespace labelled for monitoring scrapes the metrics port of
    the variant and of the router, and not the variant's serving port.

    ``model_pods``: another label selector for the model pods to probe, e.g. a rollout's track
    pods mid-rollout (``app.kubernetes.io/instance=<md>,mlserving.io/track``), which must be shut
    off like the variant they replace."""
    policies = k.get_json("networkpolicies", "-l", naming.children_selector(md), namespace=app_ns)["items"]
    assert policies, f"no NetworkPolicy of {md} in {app_ns}: the run is not 'with policies on'"
    outside, monitoring = f"{app_ns}-outside", f"{app_ns}-monitoring"
    k.apply([namespace(outside), namespace(monitoring, {MONITORING_LABEL: "true"})])
    for ns in (outside, monitoring):
        k.kubectl("wait", "--for=jsonpath={.metadata.name}=default", "serviceaccount/default", "-n", ns,
                  "--timeout=60s", timeout=80)
    k.apply([client_pod(ns, image) for ns in (outside, monitoring)])
    for ns in (outside, monitoring):
        wait_client_ready(k.kubectl, ns)

    def pod_ip(selector: str) -> str:
        return running_pod_ip(k.get_json("pods", "-l", selector, namespace=app_ns)["items"])

    variant_ip = pod_ip(model_pods or f"{naming.LABEL_INSTANCE}={md},{naming.LABEL_VARIANT}={variant}")
    router_ip = pod_ip(f"{naming.LABEL_INSTANCE}={md},{naming.LABEL_VARIANT}={naming.ROUTER}")
    targets = [("router", "http", f"http://{md}.{app_ns}.svc.cluster.local/predict", payload()),
               ("variant-serving", "tcp", f"{variant_ip}:{naming.HTTP_PORT}", None),
               ("variant-metrics", "http", f"http://{variant_ip}:{naming.METRICS_PORT}/metrics", None),
               ("router-metrics", "http", f"http://{router_ip}:{naming.METRICS_PORT}/metrics", None)]

    def check():
        got = probe(k.kubectl, outside, targets)
        assert got["router"] == 200, ("outside -> router", got)
        assert blocked(got["variant-serving"]), ("outside bypassing the router to a variant", got)
        assert blocked(got["variant-metrics"]), ("outside -> a variant's metrics port", got)
        assert blocked(got["router-metrics"]), ("outside -> the router's metrics port", got)
        got = probe(k.kubectl, monitoring, targets)
        assert got["variant-metrics"] == 200 and got["router-metrics"] == 200, ("monitoring -> metrics", got)
        assert blocked(got["variant-serving"]), ("monitoring -> a variant's serving port", got)
    try:
        eventually(check)
    finally:
        k.kubectl("delete", "namespace", outside, monitoring, "--wait=false", check=False)
