"""Deployments roll out on the fake nodes and owner references are garbage-collected."""

import time

import pytest

pytestmark = pytest.mark.cluster

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.k8s.io/pause:3.10
"""


def wait_until_gone(cluster, namespace, *kinds, timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        left = {kind: cluster.get_json(kind, "-l", "app=web", namespace=namespace)["items"] for kind in kinds}
        left = {kind: [o["metadata"]["name"] for o in items] for kind, items in left.items() if items}
        if not left:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not garbage-collected after {timeout}s: {left}")
        time.sleep(1)


def test_deployment_becomes_available_and_is_garbage_collected(cluster, k8s_namespace):
    cluster.apply(DEPLOYMENT, namespace=k8s_namespace)
    cluster.kubectl("rollout", "status", "deployment/web", "-n", k8s_namespace, "--timeout=90s", timeout=120)
    status = cluster.get_json("deployment", "web", namespace=k8s_namespace)["status"]
    assert status.get("availableReplicas") == 2, status

    replicasets = cluster.get_json("replicasets", "-l", "app=web", namespace=k8s_namespace)["items"]
    assert len(replicasets) == 1
    assert replicasets[0]["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    pods = cluster.get_json("pods", "-l", "app=web", namespace=k8s_namespace)["items"]
    assert sorted(p["status"]["phase"] for p in pods) == ["Running", "Running"]
    assert {p["spec"]["nodeName"] for p in pods} <= {
        n["metadata"]["name"] for n in cluster.get_json("nodes")["items"]
    }

    cluster.kubectl("delete", "deployment", "web", "-n", k8s_namespace, "--wait=false")
    wait_until_gone(cluster, k8s_namespace, "replicasets", "pods")
