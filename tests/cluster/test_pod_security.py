"""The PodSecurity admission plugin enforces a namespace's restricted level."""

import pytest

pytestmark = pytest.mark.cluster

PRIVILEGED_POD = """
apiVersion: v1
kind: Pod
metadata: {name: privileged}
spec:
  containers:
  - name: c
    image: registry.k8s.io/pause:3.10
    securityContext: {privileged: true}
"""

RESTRICTED_POD = """
apiVersion: v1
kind: Pod
metadata: {name: restricted}
spec:
  securityContext:
    runAsNonRoot: true
    runAsUser: 65535
    seccompProfile: {type: RuntimeDefault}
  containers:
  - name: c
    image: registry.k8s.io/pause:3.10
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
"""


def test_restricted_namespace_rejects_privileged_pod(cluster, k8s_namespace):
    cluster.kubectl("label", "namespace", k8s_namespace, "pod-security.kubernetes.io/enforce=restricted")
    rejected = cluster.kubectl("apply", "-n", k8s_namespace, "-f", "-", input=PRIVILEGED_POD, check=False)
    assert rejected.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in rejected.stderr, rejected.stderr
    assert "privileged" in rejected.stderr

    # The same namespace admits a pod that meets the restricted profile.
    cluster.apply(RESTRICTED_POD, namespace=k8s_namespace)
    assert cluster.get_json("pod", "restricted", namespace=k8s_namespace)["metadata"]["name"] == "restricted"
