"""A ModelDeployment in the real node's API with its children rendered by the operator's own
``desired_children`` and server-side applied under the operator's field manager, so pods,
Services, policies and mounts are exactly the operator's, without the operator image.

No operator may run meanwhile: one would reconcile the same ModelDeployment with its own settings
(the e2e suites leave deploy/'s install running), so :func:`install_crd_alone` removes it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import yaml
from crd_kit import wait_crd_served
from mlserving.operator import naming
from mlserving.operator.children import desired_children
from mlserving.operator.settings import OperatorSettings
from netprobe import running_pod_ip


class Rendered:
    def __init__(self, node, settings: OperatorSettings, namespace: str, name: str,
                 manifest: Callable[[dict], dict]):
        """``manifest(security)``: the ModelDeployment with that spec.security."""
        self.node, self.settings = node, settings
        self.namespace, self.name, self.manifest = namespace, name, manifest

    def apply(self, security: dict) -> dict:
        self.node.kubectl("apply", "--server-side", "--field-manager=mlserving-tests", "--force-conflicts",
                          "-f", "-", input=json.dumps(self.manifest(security)))
        md = self.node.get_json("modeldeployment", self.name, "-n", self.namespace)
        children = desired_children(md, self.settings)
        self.node.kubectl("apply", "--server-side", f"--field-manager={naming.FIELD_MANAGER}", "--force-conflicts",
                          "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": children}))
        # Prune NetworkPolicies no longer desired, as the operator does.
        wanted = {c["metadata"]["name"] for c in children if c["kind"] == "NetworkPolicy"}
        listed = self.node.get_json("networkpolicies", "-n", self.namespace, "-l", naming.children_selector(self.name))
        for item in listed["items"]:
            if item["metadata"]["name"] not in wanted:
                self.node.kubectl("delete", "networkpolicy", item["metadata"]["name"], "-n", self.namespace)
        return md

    def pods(self, variant: str) -> list[dict]:
        return self.node.get_json("pods", "-n", self.namespace, "-l",
                                  f"{naming.LABEL_INSTANCE}={self.name},{naming.LABEL_VARIANT}={variant}")["items"]

    def variant_pod_ip(self, variant: str) -> str:
        return running_pod_ip(self.pods(variant))


REPO = Path(__file__).resolve().parents[2]
OPERATOR_NAMESPACE = "mlserving-system"


def install_crd_alone(node) -> None:
    """The CRD, with no operator running beside the tests' own rendering."""
    node.kubectl("apply", "--server-side", "--force-conflicts", "-f",
                 str(REPO / "crds" / "modeldeployments.mlserving.io.yaml"))
    wait_crd_served(node)
    remove_kustomize_install(node)


def remove_kustomize_install(node) -> None:
    """What `kubectl apply -k deploy/` installed, but the CRD (ModelDeployments elsewhere keep it)
    and the Namespace (a later install would find it terminating); returns once the operator's
    pods are gone too."""
    rendered = yaml.safe_load_all(node.kubectl("kustomize", str(REPO / "deploy")).stdout)
    doomed = [o for o in rendered if o and o["kind"] not in ("CustomResourceDefinition", "Namespace")]
    node.kubectl("delete", "-f", "-", "--ignore-not-found", "--wait=true", "--timeout=120s", timeout=140,
                 input=json.dumps({"apiVersion": "v1", "kind": "List", "items": doomed}))
    deadline = time.monotonic() + 120
    while node.get_json("pods", "-n", OPERATOR_NAMESPACE, "-l", "app.kubernetes.io/component=operator")["items"]:
        assert time.monotonic() < deadline, "deploy/'s operator pods still there 120 s after their Deployment went"
        time.sleep(2)


def wait_default_serviceaccount(node, *namespaces: str) -> None:
    for ns in namespaces:
        node.kubectl("wait", "--for=jsonpath={.metadata.name}=default", "serviceaccount/default", "-n", ns,
                     "--timeout=60s")
