"""The NetworkPolicies the operator renders, enforced on the real node (kube-router's policy
controller, hack/node/up.sh), probed from test pods in other namespaces.

An A/B ModelDeployment is created through the API (its CRD rules apply) and its children are
rendered by ``desired_children`` and server-side applied the way the operator does (same field
manager), so the pods, Services and policies are exactly the operator's. Then, from client pods:
another namespace gets predictions through the router but cannot open a variant pod's serving
port; with ``allowedFrom`` narrowed it no longer reaches the router; a namespace labelled
``mlserving.io/monitoring=true`` reaches the metrics port and not the serving port of a variant;
``networkPolicy: false`` opens the variants again.
"""

from __future__ import annotations

import uuid

import pytest
from mlserving.operator import naming
from mlserving.operator.settings import OperatorSettings
from mlserving.operator.spec import MONITORING_LABEL
from netprobe import blocked, client_pod, eventually, namespace, payload, probe
from rendered import Rendered, install_crd_alone, wait_default_serviceaccount

pytestmark = [pytest.mark.node, pytest.mark.slow]

RUN = uuid.uuid4().hex[:5]
APP_NS, OTHER_NS, MONITORING_NS, TEAM_NS = (f"mls-np-{RUN}", f"mls-np-{RUN}-other", f"mls-np-{RUN}-mon",
                                           f"mls-np-{RUN}-team")
MD_NAME = "fraud"
RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}
TEAM_LABEL = {"team": "payments"}


def model_deployment(security: dict) -> dict:
    return {"apiVersion": "mlserving.io/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": MD_NAME, "namespace": APP_NS},
            "spec": {"model": "fraud", "resources": RESOURCES, "security": security,
                     "variants": [{"name": "stable", "version": "1.0.0", "weight": 90},
                                  {"name": "candidate", "version": "2.0.0", "weight": 10}]}}


@pytest.fixture(scope="module")
def deployed(real_node):
    node = real_node
    install_crd_alone(node)
    node.apply(namespace(APP_NS), namespace(OTHER_NS), namespace(MONITORING_NS, {MONITORING_LABEL: "true"}),
               namespace(TEAM_NS, TEAM_LABEL))
    wait_default_serviceaccount(node, APP_NS, OTHER_NS, MONITORING_NS, TEAM_NS)
    settings = OperatorSettings(server_image=node.server_image, router_min_replicas=1, router_max_replicas=1)
    app = Rendered(node, settings, APP_NS, MD_NAME, model_deployment)
    app.apply({})
    node.apply(*(client_pod(ns, node.server_image) for ns in (OTHER_NS, MONITORING_NS, TEAM_NS)))
    for name in ("fraud-stable", "fraud-candidate", "fraud-router"):
        node.kubectl("rollout", "status", f"deployment/{name}", "-n", APP_NS, "--timeout=240s", timeout=260)
    for ns in (OTHER_NS, MONITORING_NS, TEAM_NS):
        node.wait_for_pod(ns, "client", "Ready", timeout=120)
    yield app
    node.kubectl("delete", "namespace", APP_NS, OTHER_NS, MONITORING_NS, TEAM_NS, "--wait=false", check=False)


def predict_url() -> str:
    return f"http://{MD_NAME}.{APP_NS}.svc.cluster.local/predict"


def serving_targets(app: Rendered) -> list[tuple]:
    return [("router", "http", predict_url(), payload()),
            ("variant-pod", "tcp", f"{app.variant_pod_ip('stable')}:{naming.HTTP_PORT}", None),
            ("variant-service", "tcp", f"{MD_NAME}-stable.{APP_NS}.svc.cluster.local:{naming.SERVICE_PORT}", None)]


def test_another_namespace_gets_through_the_router_but_not_to_a_variant(real_node, deployed):
    def check():
        got = probe(real_node.kubectl, OTHER_NS, serving_targets(deployed))
        assert got["router"] == 200, got
        assert blocked(got["variant-pod"]), got
        assert blocked(got["variant-service"]), got
    eventually(check)


def test_a_labelled_namespace_reaches_the_metrics_port_but_not_the_serving_port(real_node, deployed):
    ip = deployed.variant_pod_ip("stable")
    stable = real_node.get_json("pods", "-n", APP_NS, "-l", f"{naming.LABEL_VARIANT}=stable")["items"][0]
    # Whether this build's server listens on the metrics port at all (from inside its own pod,
    # which no policy filters): without a listener "reaches" cannot be told from "blocked".
    local = real_node.kubectl("exec", "-n", APP_NS, stable["metadata"]["name"], "--", "python3", "-c",
                              f"import socket; socket.create_connection(('127.0.0.1', {naming.METRICS_PORT}), 2)",
                              check=False)
    targets = [("serving", "tcp", f"{ip}:{naming.HTTP_PORT}", None),
               ("metrics", "http", f"http://{ip}:{naming.METRICS_PORT}/metrics", None)]

    def check():
        got = probe(real_node.kubectl, MONITORING_NS, targets)
        assert blocked(got["serving"]), got
        if local.returncode == 0:
            assert got["metrics"] == 200, got
        # An unlabelled namespace is kept off the metrics port as well.
        other = probe(real_node.kubectl, OTHER_NS, targets)
        assert blocked(other["metrics"]), other
    eventually(check)
    if local.returncode != 0:
        pytest.skip(f"the server in this image does not listen on port {naming.METRICS_PORT}: only the "
                    "blocked half of the metrics check could run")


def test_allowed_from_narrowed_shuts_other_namespaces_out_of_the_router(real_node, deployed):
    deployed.apply({"allowedFrom": [{"namespaceSelector": {"matchLabels": TEAM_LABEL},
                                     "podSelector": {"matchLabels": {"app": "checkout"}}}]})
    targets = [("router", "http", predict_url(), payload())]
    try:
        def check():
            assert blocked(probe(real_node.kubectl, OTHER_NS, targets)["router"])
            assert probe(real_node.kubectl, TEAM_NS, targets)["router"] == 200
        eventually(check)
    finally:
        deployed.apply({})


def test_network_policy_false_opens_the_variants(real_node, deployed):
    deployed.apply({"networkPolicy": False})
    try:
        assert real_node.get_json("networkpolicies", "-n", APP_NS)["items"] == []

        def check():
            got = probe(real_node.kubectl, OTHER_NS, serving_targets(deployed))
            assert got["router"] == 200 and got["variant-pod"] == "open" and got["variant-service"] == "open", got
        eventually(check)
    finally:
        deployed.apply({})
