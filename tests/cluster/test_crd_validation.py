"""A CRD with a CEL validation rule is served and enforces the rule."""

import uuid

import pytest

pytestmark = pytest.mark.cluster

GROUP = "cluster-tests.mlserving.io"
RULE_MESSAGE = "minReplicas must not exceed maxReplicas"

CRD = f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: scalers.{GROUP}
spec:
  group: {GROUP}
  scope: Namespaced
  names: {{plural: scalers, singular: scaler, kind: Scaler}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: self.minReplicas <= self.maxReplicas
              message: {RULE_MESSAGE}
            properties:
              minReplicas: {{type: integer}}
              maxReplicas: {{type: integer}}
"""


def scaler(name, min_replicas, max_replicas):
    return f"""
apiVersion: {GROUP}/v1
kind: Scaler
metadata: {{name: {name}}}
spec: {{minReplicas: {min_replicas}, maxReplicas: {max_replicas}}}
"""


@pytest.fixture
def scaler_crd(cluster):
    cluster.apply(CRD)
    cluster.kubectl("wait", "--for=condition=Established", f"crd/scalers.{GROUP}", "--timeout=60s")
    yield
    cluster.kubectl("delete", "crd", f"scalers.{GROUP}", "--wait=false", check=False)


def test_cel_rule_admits_valid_and_rejects_violating_objects(cluster, scaler_crd, k8s_namespace):
    ok_name = f"ok-{uuid.uuid4().hex[:6]}"
    cluster.apply(scaler(ok_name, 1, 3), namespace=k8s_namespace)
    assert cluster.get_json("scaler", ok_name, namespace=k8s_namespace)["spec"]["maxReplicas"] == 3

    rejected = cluster.kubectl(
        "apply", "-n", k8s_namespace, "-f", "-", input=scaler("bad", 5, 2), check=False
    )
    assert rejected.returncode != 0
    assert RULE_MESSAGE in rejected.stderr, rejected.stderr
    missing = cluster.kubectl("get", "scaler", "bad", "-n", k8s_namespace, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr
