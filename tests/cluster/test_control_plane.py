"""The API server answers and the fake nodes are Ready (issue 3 acceptance)."""

import json

import pytest

pytestmark = pytest.mark.cluster


def test_readyz_answers_ok(cluster):
    assert cluster.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"


def test_at_least_two_ready_nodes(cluster):
    nodes = cluster.get_json("nodes")["items"]
    ready = [
        n["metadata"]["name"]
        for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
    ]
    assert len(ready) >= 2, f"Ready nodes: {ready} of {[n['metadata']['name'] for n in nodes]}"


def test_server_runs_the_pinned_kubernetes_minor(cluster):
    version = json.loads(cluster.kubectl("get", "--raw", "/version").stdout)
    assert version["gitVersion"].startswith("v1.35."), version
