"""Spreading and drains on the local control plane, with fake nodes of the test's own.

Each test adds kwok nodes (labelled with a zone and a pool label of its own), points the
ModelDeployment's pods at that pool through podOverrides.nodeSelector, and removes the nodes
afterwards. The real kube-scheduler places the pods; kwok only makes them Running and Ready.
"""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
from opcluster_kit import wait_for

pytestmark = pytest.mark.cluster

POOL_LABEL = "mlserving.io/test-pool"
ZONE_LABEL = "topology.kubernetes.io/zone"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"  # what kwok's controller manages (see hack/cluster.sh)
NAME = "spread"
SERVER_CPU = "250m"  # the CRD's default request


def node_manifest(name: str, pool: str, zone: str, cpu: str) -> dict:
    capacity = {"cpu": cpu, "memory": "64Gi", "pods": "110"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": {KWOK_ANNOTATION: "fake"},
                         "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                    "kubernetes.io/arch": "amd64", "type": "kwok", ZONE_LABEL: zone,
                                    POOL_LABEL: pool}},
            "status": {"allocatable": capacity, "capacity": capacity}}


def require_kwok(cluster) -> None:
    nodes = cluster.get_json("nodes")["items"]
    if any((n["metadata"].get("annotations") or {}).get(KWOK_ANNOTATION) == "fake" for n in nodes):
        return
    reason = "this cluster has no kwok fake nodes (hack/cluster.sh up runs kwok; a real node does not)"
    if os.environ.get("MLSERVING_REQUIRE_CLUSTER", "") not in ("", "0", "false", "no"):
        pytest.fail(f"MLSERVING_REQUIRE_CLUSTER=1 but {reason}")
    pytest.skip(reason)


class FakeNodes:
    """kwok nodes in one pool; on teardown the namespace's ModelDeployments go first, then the nodes."""

    def __init__(self, cluster, pool: str, namespace: str):
        self.cluster, self.pool, self.namespace = cluster, pool, namespace
        self.names: list[str] = []

    def add(self, zone: str, cpu: str = "32") -> str:
        name = f"{self.pool}-{len(self.names)}"
        self.cluster.apply(node_manifest(name, self.pool, zone, cpu))
        self.names.append(name)
        self.cluster.kubectl("wait", "--for=condition=Ready", f"node/{name}", "--timeout=60s", timeout=90)
        return name

    def remove_all(self) -> None:
        self.cluster.kubectl("delete", "modeldeployments", "--all", "-n", self.namespace, "--wait=true",
                             "--timeout=60s", check=False, timeout=90)
        try:
            wait_for("the test's pods to go", lambda: not pods(self.cluster, self.namespace), 60)
        finally:
            if self.names:
                self.cluster.kubectl("delete", "node", *self.names, "--wait=true", "--timeout=60s",
                                     check=False, timeout=90)


@pytest.fixture
def fake_nodes(crd, op_ns, run_id, request):
    require_kwok(crd)
    test = request.node.name.removeprefix("test_")[:12].strip("_").replace("_", "-")
    nodes = FakeNodes(crd, f"mls-{run_id}-{test}", op_ns)
    yield nodes
    nodes.remove_all()


def spread_md(pool: str, variants: list[dict], spread: str | None = None) -> dict:
    spec = {"model": "fraud", "variants": variants, "podOverrides": {"nodeSelector": {POOL_LABEL: pool}}}
    if spread:
        spec["placement"] = {"spread": spread}
    return {"apiVersion": "mlserving.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": NAME},
            "spec": spec}


def pods(cluster, namespace: str, variant: str | None = None) -> list[dict]:
    selector = f"app.kubernetes.io/instance={NAME}" + (f",mlserving.io/variant={variant}" if variant else "")
    return cluster.get_json("pods", "-l", selector, namespace=namespace)["items"]


def is_ready(pod: dict) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False  # terminating: its endpoint is gone even if the container still answers
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


def ready_nodes(cluster, namespace: str, variant: str, count: int, template_hash: str | None = None):
    """The nodes of ``count`` ready pods of ``variant`` (of one ReplicaSet if given), or None."""
    found = [p for p in pods(cluster, namespace, variant) if is_ready(p)
             and (template_hash is None or p["metadata"]["labels"].get("pod-template-hash") == template_hash)]
    return [p["spec"]["nodeName"] for p in found] if len(found) == count else None


def unschedulable(pod: dict) -> str | None:
    """The scheduler's message when it refused the pod, else None."""
    for c in pod["status"].get("conditions") or []:
        if c["type"] == "PodScheduled" and c["status"] == "False" and c.get("reason") == "Unschedulable":
            return c.get("message", "")
    return None


def test_four_nodes_in_two_zones_get_one_pod_each_and_the_router_spreads(crd, op_ns, fake_nodes):
    nodes = [fake_nodes.add(zone) for zone in ("zone-a", "zone-a", "zone-b", "zone-b")]
    crd.apply(spread_md(fake_nodes.pool, [
        {"name": "stable", "version": "1.0.0", "weight": 100, "replicas": 4},
        {"name": "candidate", "version": "2.0.0", "weight": 0, "replicas": 1}]), namespace=op_ns)

    stable = wait_for("4 ready stable pods", lambda: ready_nodes(crd, op_ns, "stable", 4), 120)
    assert sorted(stable) == sorted(nodes), f"one pod per node expected: {stable}"
    router = wait_for("2 ready router pods", lambda: ready_nodes(crd, op_ns, "router", 2), 120)
    assert len(set(router)) == 2, f"the router's pods share a node: {router}"

    # The API server folds the pod's own pod-template-hash into each constraint's selector
    # (matchLabelKeys), so pods of one ReplicaSet are counted apart from a rollout's others.
    pod = pods(crd, op_ns, "stable")[0]
    template_hash = pod["metadata"]["labels"]["pod-template-hash"]
    for c in pod["spec"]["topologySpreadConstraints"]:
        assert {"key": "pod-template-hash", "operator": "In", "values": [template_hash]} in \
            c["labelSelector"].get("matchExpressions", []), c

    # A rollout's new pods spread on their own: one per node again once it is done.
    crd.kubectl("patch", "md", NAME, "-n", op_ns, "--type=json",
                "-p", json.dumps([{"op": "replace", "path": "/spec/variants/0/version", "value": "1.0.1"}]))

    def new_replicaset_ready():
        fresh = {p["metadata"]["labels"]["pod-template-hash"] for p in pods(crd, op_ns, "stable")} - {template_hash}
        if len(fresh) != 1:
            return None
        placed = ready_nodes(crd, op_ns, "stable", 4, template_hash=fresh.pop())
        old_left = [p for p in pods(crd, op_ns, "stable")
                    if p["metadata"]["labels"]["pod-template-hash"] == template_hash]
        return placed if placed and not old_left else None
    rolled = wait_for("the rollout's 4 new pods ready and the old ones gone", new_replicaset_ready, 180)
    assert sorted(rolled) == sorted(nodes), f"one new pod per node expected: {rolled}"


def test_hard_leaves_pods_pending_rather_than_exceeding_a_skew_of_one(crd, op_ns, fake_nodes):
    roomy = [fake_nodes.add("zone-a"), fake_nodes.add("zone-b")]
    # A node with no room for a server pod still counts as a domain, with 0 pods: the two roomy
    # nodes may then hold one pod each, and the other three pods have nowhere to go.
    full = fake_nodes.add("zone-a", cpu="200m")
    crd.apply(spread_md(fake_nodes.pool, [{"name": "stable", "version": "1.0.0", "weight": 100, "replicas": 5}],
                        spread="hard"), namespace=op_ns)

    def two_placed_three_refused():
        found = pods(crd, op_ns, "stable")
        refused = [unschedulable(p) for p in found if not p["spec"].get("nodeName")]
        placed = sorted(p["spec"]["nodeName"] for p in found if p["spec"].get("nodeName"))
        return (placed, refused) if len(found) == 5 and len(refused) == 3 and all(refused) else None
    placed, refused = wait_for("2 pods placed and 3 refused by the scheduler", two_placed_three_refused, 120)
    assert placed == sorted(roomy), placed
    for message in refused:
        assert "topology spread constraints" in message, message
    time.sleep(3)  # the refusal is not a passing state: nothing doubles up later either
    assert sorted(p["spec"]["nodeName"] for p in pods(crd, op_ns, "stable") if p["spec"].get("nodeName")) == placed

    # Room on the third node: every pod is placed, and no node holds more than one above another.
    crd.kubectl("patch", "node", full, "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": {"allocatable": {"cpu": "32"}, "capacity": {"cpu": "32"}}}))
    spread = wait_for("all 5 pods ready", lambda: ready_nodes(crd, op_ns, "stable", 5), 120)
    counts = sorted(spread.count(n) for n in fake_nodes.names)
    assert counts == [1, 2, 2], spread


def allowing_one(cluster, namespace: str, name: str) -> dict | None:
    found = cluster.kubectl("get", "pdb", name, "-n", namespace, "-o", "json", check=False)
    if found.returncode != 0:
        return None
    budget = json.loads(found.stdout)
    return budget if (budget.get("status") or {}).get("disruptionsAllowed") == 1 else None


class ReadyWatch(threading.Thread):
    """Samples the variant's ready pods (and its Deployment's readyReplicas) until stopped."""

    def __init__(self, cluster, namespace: str, variant: str):
        super().__init__(daemon=True)
        self.cluster, self.namespace, self.variant = cluster, namespace, variant
        self.samples: list[tuple[int, int]] = []  # (ready pods, Deployment readyReplicas)
        self.errors: list[str] = []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                found = self.cluster.get_json("deployment", f"{NAME}-{self.variant}", namespace=self.namespace)
                ready_pods = sum(is_ready(p) for p in pods(self.cluster, self.namespace, self.variant))
                self.samples.append((ready_pods, found["status"].get("readyReplicas", 0)))
            except Exception as exc:  # noqa: BLE001 - recorded and asserted on, never swallowed
                self.errors.append(repr(exc))
            self.halt.wait(0.2)

    def stop(self):
        self.halt.set()
        self.join(30)


def test_drain_goes_through_evictions_and_never_leaves_the_variant_without_ready_pods(crd, op_ns, fake_nodes):
    drained, *others = [fake_nodes.add(zone) for zone in ("zone-a", "zone-b", "zone-a")]
    # Both pods start on the node to be drained, so the drain has to wait on the budget.
    for name in others:
        crd.kubectl("cordon", name)
    crd.apply(spread_md(fake_nodes.pool, [{"name": "stable", "version": "1.0.0", "weight": 100, "replicas": 2}]),
              namespace=op_ns)
    assert wait_for("2 ready pods", lambda: ready_nodes(crd, op_ns, "stable", 2), 120) == [drained, drained]
    budget = wait_for("the variant's PodDisruptionBudget to allow one disruption",
                      lambda: allowing_one(crd, op_ns, f"{NAME}-stable"), 60)
    assert budget["spec"]["maxUnavailable"] == 1
    before = sorted(p["metadata"]["name"] for p in pods(crd, op_ns, "stable"))
    for name in others:
        crd.kubectl("uncordon", name)

    watch = ReadyWatch(crd, op_ns, "stable")
    watch.start()
    try:
        drain = crd.kubectl("drain", drained, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=150s",
                            check=False, timeout=180)
        wait_for("2 ready pods after the drain", lambda: ready_nodes(crd, op_ns, "stable", 2), 60)
    finally:
        watch.stop()
    output = drain.stdout + drain.stderr
    assert drain.returncode == 0, output
    for name in before:
        assert f"evicting pod {op_ns}/{name}" in output, output  # the Eviction API, not a plain delete

    assert not watch.errors, watch.errors
    assert len(watch.samples) >= 2, watch.samples  # the drain itself takes a few seconds on kwok
    assert min(ready for ready, _ in watch.samples) >= 1, watch.samples
    assert min(replicas for _, replicas in watch.samples) >= 1, watch.samples
    after = ready_nodes(crd, op_ns, "stable", 2)
    assert sorted(after) == sorted(others), f"the replacements should spread over the other nodes: {after}"
