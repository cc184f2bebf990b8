"""The Helm chart on the real node: `helm install`, the operator's pod Ready, the A/B example Ready
and serving through its router; `helm upgrade` rolls the operator and not the example's pods;
`helm uninstall` leaves the CRD, the ModelDeployment and its pods serving."""

from __future__ import annotations

import json
import uuid

import pytest
import yaml
from helm_kit import CHART, REPO, run_helm
from providers.base import project_images
from rendered import remove_kustomize_install

pytestmark = [pytest.mark.node, pytest.mark.slow]

RELEASE, RELEASE_NS = "mlserving", "mlserving-system"
APP_NS = f"mls-helm-{uuid.uuid4().hex[:5]}"
RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}
# Inside a variant pod: 20 predictions through the stable Service (the router), the variant of each.
PREDICT = r"""
import json, sys, urllib.request
seen = []
for _ in range(20):
    req = urllib.request.Request(sys.argv[1], data=json.dumps({"features": [0.1] * int(sys.argv[2])}).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        seen.append([resp.status, resp.headers.get("x-mlserving-variant")])
print(json.dumps(seen))
"""


def helm_on(node, helm, *args, values=None):
    return run_helm(helm, *args, values=values, kubeconfig=node.kubeconfig, timeout=400)


def example_pods(node) -> dict[str, str]:
    items = node.get_json("pods", "-n", APP_NS, "-l", "app.kubernetes.io/instance=fraud")["items"]
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in items if not p["metadata"].get("deletionTimestamp")}


def predictions_through_the_router(node) -> list[list]:
    from mlserving.training.data import FEATURE_NAMES

    pod = next(p for p in node.get_json("pods", "-n", APP_NS, "-l", "mlserving.io/variant=stable")["items"]
               if p["status"].get("phase") == "Running")
    url = f"http://fraud.{APP_NS}.svc.cluster.local/predict"
    out = node.kubectl("exec", "-n", APP_NS, pod["metadata"]["name"], "--", "python3", "-c", PREDICT, url,
                       str(len(FEATURE_NAMES)), timeout=90).stdout
    return json.loads(out.strip().splitlines()[-1])


def rolled_out_operator_pod(node) -> dict:
    """The operator's one pod once its rollout is done. With one replica and maxUnavailable 1,
    `helm --wait` counts the Deployment ready before its pod is; rollout status waits for every
    updated replica to be available."""
    node.kubectl("rollout", "status", "deployment/mlserving-operator", "-n", RELEASE_NS, "--timeout=180s",
                 timeout=200)
    (pod,) = [p for p in node.get_json("pods", "-n", RELEASE_NS, "-l", "app.kubernetes.io/component=operator")["items"]
              if not p["metadata"].get("deletionTimestamp")]
    return pod


@pytest.fixture(scope="module")
def installed(real_node, helm):
    node = real_node
    remove_kustomize_install(node)
    operator = next(i for i in project_images() if i.ref.startswith("docker.io/mlserving/operator:"))
    node.provider.load_images([operator])
    helm_on(node, helm, "install", RELEASE, str(CHART), "-n", RELEASE_NS, "--create-namespace", "--wait",
            "--timeout=300s", values={"operator": {"replicas": 1, "settings": {"routerMinReplicas": 1,
                                                                              "routerMaxReplicas": 1}}})
    md = yaml.safe_load((REPO / "examples" / "fraud-ab.yaml").read_text())
    md["metadata"]["namespace"] = APP_NS
    md["spec"]["resources"] = RESOURCES
    md["spec"].pop("autoscaling", None)
    node.apply({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": APP_NS, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}, md)
    yield node
    helm_on(node, helm, "uninstall", RELEASE, "-n", RELEASE_NS, "--ignore-not-found")
    node.kubectl("delete", "namespace", APP_NS, "--wait=false", check=False)


def test_install_upgrade_uninstall_on_the_real_node(installed, helm):
    node = installed
    op_pod = rolled_out_operator_pod(node)
    assert all(c["ready"] for c in op_pod["status"]["containerStatuses"]), op_pod["status"]
    node.kubectl("wait", "--for=condition=Ready", "modeldeployment/fraud", "-n", APP_NS, "--timeout=300s",
                 timeout=320)
    answers = predictions_through_the_router(node)
    assert {status for status, _ in answers} == {200} and {v for _, v in answers} <= {"stable", "candidate"}
    pods = example_pods(node)
    assert pods

    helm_on(node, helm, "upgrade", RELEASE, str(CHART), "-n", RELEASE_NS, "--reuse-values", "--wait",
            "--timeout=300s", values={"operator": {"settings": {"workers": 4}}})
    new_pod = rolled_out_operator_pod(node)
    assert new_pod["metadata"]["uid"] != op_pod["metadata"]["uid"], "the upgrade did not roll the operator"
    # The new operator leads and re-renders the example's children: the same, so no pod is replaced.
    node.kubectl("wait", f"--for=jsonpath={{.spec.holderIdentity}}={new_pod['metadata']['name']}",
                 "lease/mlserving-operator", "-n", RELEASE_NS, "--timeout=90s", timeout=100)
    node.kubectl("wait", "--for=condition=Ready", "modeldeployment/fraud", "-n", APP_NS, "--timeout=60s")
    assert example_pods(node) == pods, "the operator upgrade replaced the ModelDeployment's pods"

    helm_on(node, helm, "uninstall", RELEASE, "-n", RELEASE_NS, "--wait", "--timeout=120s")
    assert node.kubectl("get", "deployment", "mlserving-operator", "-n", RELEASE_NS,
                        check=False).returncode != 0
    node.kubectl("get", "crd", "modeldeployments.mlserving.io")
    node.kubectl("get", "modeldeployment", "fraud", "-n", APP_NS)
    assert example_pods(node) == pods
    assert {status for status, _ in predictions_through_the_router(node)} == {200}
