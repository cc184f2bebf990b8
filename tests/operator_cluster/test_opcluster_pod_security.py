"""Issue 4 acceptance 11: the rendered children pass PodSecurity `restricted` without warnings."""

import copy

import pytest
import yaml
from mlserving.operator.children import desired_children
from mlserving.operator.settings import OperatorSettings
from opcluster_kit import DEPLOYMENT, REPO, load_example, replicasets_of, wait_for

pytestmark = pytest.mark.cluster
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted",
              "pod-security.kubernetes.io/audit": "restricted"}


def test_children_are_admitted_without_warnings_under_restricted(crd, api, op_ns, shared_operator):
    crd.kubectl("label", "namespace", op_ns, "--overwrite", *[f"{k}={v}" for k, v in RESTRICTED.items()])

    # Warnings: a server-side dry run of every rendered child (workload pod templates are checked
    # against the namespace's `warn` level and the warnings come back to the client).
    md = copy.deepcopy(load_example("fraud-ab.yaml"))
    md["metadata"].update(name="psa-probe", namespace=op_ns, uid="00000000-0000-4000-8000-000000000001",
                          generation=1)
    children = desired_children(md, OperatorSettings.from_env())
    assert any(c["kind"] == "Deployment" for c in children)
    dry = crd.kubectl("create", "--dry-run=server", "-n", op_ns, "-f", "-",
                      input=yaml.safe_dump_all(children), check=False)
    assert dry.returncode == 0, dry.stderr
    assert "Warning" not in dry.stderr, dry.stderr

    # Enforcement: the operator's real children get their pods admitted and running.
    crd.kubectl("apply", "-n", op_ns, "-f", str(REPO / "examples" / "fraud-ab.yaml"))
    crd.kubectl("wait", "--for=condition=Ready", "md/fraud", "-n", op_ns, "--timeout=120s", timeout=150)
    deployments = api.list(DEPLOYMENT, op_ns, "app.kubernetes.io/instance=fraud")
    assert len(deployments) == 3
    for dep in deployments:
        assert dep["status"].get("readyReplicas", 0) >= 1, dep["metadata"]["name"]
        for rs in replicasets_of(api, op_ns, dep):
            failures = [c for c in rs["status"].get("conditions") or [] if c["type"] == "ReplicaFailure"]
            assert not failures, failures
    wait_for("the operator log to be written", lambda: shared_operator.log(), 5)
    assert f"API warning on PATCH /apis/apps/v1/namespaces/{op_ns}" not in shared_operator.log()
