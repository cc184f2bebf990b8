"""Issue 4 acceptance 10: an operator holding only deploy/'s ClusterRole (via a TokenRequest
token of its ServiceAccount) passes scenarios 3-8."""

import pathlib

import pytest
from opcluster_kit import OperatorProcess, api_for, can_i, service_account_kubeconfig
from opcluster_scenarios import ALL

pytestmark = pytest.mark.cluster
REPO = pathlib.Path(__file__).resolve().parents[2]
SA, SA_NS = "mlserving-operator", "mlserving-system"


def test_scenarios_pass_with_only_the_service_accounts_permissions(crd, fresh_ns, log_dir, run_id, tmp_path):
    crd.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(REPO / "deploy"))
    # The operator Deployment itself would only run as a fake pod here: keep it out of the way.
    crd.kubectl("scale", "deployment", "mlserving-operator", "-n", SA_NS, "--replicas=0")
    kubeconfig = service_account_kubeconfig(crd, tmp_path / "sa-kubeconfig", SA, SA_NS)

    def can(*args):
        return can_i(crd, kubeconfig, *args)
    # The credentials really are the ServiceAccount's, not an administrator's.
    assert can("patch", "deployments.apps", "-n", "default") == "yes"
    assert can("create", "pods", "-n", "default") == "no"
    assert can("delete", "nodes") == "no"

    namespaces = [fresh_ns(f"sa{i}") for i in range(len(ALL))]
    op = OperatorProcess(kubeconfig, namespaces, lease_namespace=SA_NS, lease_name=f"mlserving-operator-{run_id}",
                         identity=f"sa-{run_id}", log_dir=log_dir).start()
    try:
        op.wait_leader()
        api = api_for(crd.kubeconfig)  # the checks read ReplicaSets and Events: an administrator's view
        for scenario, ns in zip(ALL, namespaces, strict=True):
            scenario(crd, api, ns)
        log = op.log()
        assert "403" not in log and "Forbidden" not in log, op.log_tail(80)
    finally:
        op.stop()
