"""charts/mlserving on the local control plane: every rendered object admitted, the operator pod
passes Pod Security `restricted`, install / upgrade / uninstall, and with watchNamespaces an
operator holding only the installed Roles works in those namespaces and nowhere else."""

import json

import pytest
import yaml
from helm_kit import CHART, run_helm, template
from mlserving.operator.kinds import kind_of
from opcluster_kit import (
    DEPLOYMENT,
    MD,
    OperatorProcess,
    can_i,
    children_match,
    create_md,
    live_children,
    load_example,
    service_account_kubeconfig,
    wait_for,
)

pytestmark = pytest.mark.cluster
POD = kind_of("v1", "Pod")
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


def dry_run(cluster, text: str) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", "-", input=text)


def test_every_rendered_object_is_admitted(helm, crd, fresh_ns):
    """(The PodMonitor, which needs the prometheus-operator CRDs: test_opcluster_monitoring.py.)"""
    release, team = fresh_ns("helm-dry"), fresh_ns("helm-dry-team")
    dry_run(crd, template(helm, namespace=release, crds=True))
    dry_run(crd, template(helm, {"operator": {"watchNamespaces": [team]}}, namespace=release))


def operator_pod(helm, values, namespace: str) -> dict:
    docs = [d for d in yaml.safe_load_all(template(helm, values, namespace=namespace)) if d]
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "operator", **dep["spec"]["template"]["metadata"]},
            "spec": dep["spec"]["template"]["spec"]}


def test_operator_pod_passes_restricted_pod_security(helm, crd, fresh_ns):
    ns = fresh_ns("helm-psa", labels=RESTRICTED)
    crd.kubectl("create", "serviceaccount", "mlserving-operator", "-n", ns)
    proc = crd.kubectl("create", "--dry-run=server", "-n", ns, "-f", "-",
                       input=json.dumps(operator_pod(helm, None, ns)))
    assert "Warning" not in proc.stderr, proc.stderr
    # The check can fail: a container allowed to escalate is refused by the same admission.
    loose = {"operator": {"securityContext": {"allowPrivilegeEscalation": True}}}
    refused = crd.kubectl("create", "--dry-run=server", "-n", ns, "-f", "-",
                          input=json.dumps(operator_pod(helm, loose, ns)), check=False)
    assert refused.returncode != 0 and 'violates PodSecurity "restricted:latest"' in refused.stderr, refused.stderr


def helm_in(cluster, helm, *args, values=None, check=True):
    return run_helm(helm, *args, values=values, kubeconfig=cluster.kubeconfig, check=check)


def test_install_refuses_a_wrong_value_naming_the_field(helm, crd, fresh_ns):
    release = fresh_ns("helm-bad")
    proc = helm_in(crd, helm, "install", "bad", str(CHART), "-n", release, values={"operator": {"replicas": "2"}},
                   check=False)
    assert proc.returncode != 0 and "/operator/replicas" in proc.stderr, proc.stderr
    assert crd.kubectl("get", "deployments", "-n", release, "-o", "name").stdout.strip() == ""


def pods_of(api, ns: str) -> dict[str, str]:
    """{name: uid} of the A/B example's pods."""
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in api.list(POD, ns, "app.kubernetes.io/instance=fraud")}


def test_namespaced_install_upgrade_uninstall(helm, crd, api, fresh_ns, run_id, log_dir, tmp_path):
    release, team, other = fresh_ns("helm"), fresh_ns("helm-team"), fresh_ns("helm-other")
    name = f"mls-{run_id}"
    values = {"operator": {"watchNamespaces": [team], "replicas": 1}}
    helm_in(crd, helm, "install", name, str(CHART), "-n", release, "--wait", "--timeout=120s", values=values)
    assert crd.get_json("clusterroles", "-l", f"app.kubernetes.io/instance={name}")["items"] == []
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]) for r in crd.get_json(
        "roles", "-A", "-l", f"app.kubernetes.io/instance={name}")["items"]}
    assert roles == {(team, "mlserving-operator"), (team, "mlserving-operator-secrets"),
                     (release, "mlserving-operator-lease")}

    kubeconfig = service_account_kubeconfig(crd, tmp_path / "sa-kubeconfig", "mlserving-operator", release)
    assert can_i(crd, kubeconfig, "patch", "deployments.apps", "-n", team) == "yes"
    assert can_i(crd, kubeconfig, "patch", "deployments.apps", "-n", other) == "no"
    assert can_i(crd, kubeconfig, "list", "modeldeployments.mlserving.io", "-A") == "no"
    assert can_i(crd, kubeconfig, "update", "leases.coordination.k8s.io", "-n", release) == "yes"

    # The chart's Deployment runs only as fake pods here; the same operator as a process, with the
    # ServiceAccount's token and the chart's --namespace arguments.
    op = OperatorProcess(kubeconfig, [team], lease_namespace=release, lease_name=f"mlserving-operator-{run_id}",
                         identity=f"helm-{run_id}", log_dir=log_dir).start()
    try:
        op.wait_leader()
        create_md(api, other, load_example("fraud-ab.yaml"))
        create_md(api, team, load_example("fraud-ab.yaml"))
        wait_for("the A/B example's children in the watched namespace",
                 lambda: children_match(api, team, "fraud") is True, 60)
        assert live_children(api, other, "fraud") == {}, "the operator reconciled an unwatched namespace"
        assert "Forbidden" not in op.log(), op.log_tail(80)
    finally:
        op.stop()

    before = api.get(DEPLOYMENT, release, "mlserving-operator")
    pods = pods_of(api, team)
    helm_in(crd, helm, "upgrade", name, str(CHART), "-n", release, "--reuse-values", "--wait", "--timeout=120s",
            values={"operator": {"settings": {"workers": 4}}})
    after = api.get(DEPLOYMENT, release, "mlserving-operator")
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    env = {e["name"]: e.get("value") for e in after["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLSERVING_OPERATOR_WORKERS"] == "4"
    assert pods and pods_of(api, team) == pods, "the upgrade touched the ModelDeployment's pods"

    helm_in(crd, helm, "uninstall", name, "-n", release, "--wait", "--timeout=120s")
    assert api.get(DEPLOYMENT, release, "mlserving-operator") is None
    assert crd.get_json("roles", "-A", "-l", f"app.kubernetes.io/instance={name}")["items"] == []
    crd.kubectl("get", "crd", "modeldeployments.mlserving.io")
    assert api.get(MD, team, "fraud") is not None and pods_of(api, team) == pods


def test_cluster_wide_install_and_uninstall(helm, crd, api, fresh_ns, run_id):
    """Another install's name (deploy/ may own mlserving-operator here): ClusterRoles, then none."""
    release = fresh_ns("helm-cw")
    name = f"mls-{run_id}"
    values = {"operator": {"name": f"mls-op-{run_id}", "leaderElection": {"leaseName": f"mls-op-{run_id}"}}}
    helm_in(crd, helm, "install", name, str(CHART), "-n", release, "--wait", "--timeout=120s", values=values)
    label = f"app.kubernetes.io/instance={name}"
    bindings = crd.get_json("clusterrolebindings", "-l", label)["items"]
    assert sorted(b["roleRef"]["name"] for b in bindings) == [f"mls-op-{run_id}", f"mls-op-{run_id}-secrets"]
    assert all(b["subjects"][0]["namespace"] == release for b in bindings)
    assert crd.get_json("roles", "-A", "-l", label)["items"] == []
    helm_in(crd, helm, "uninstall", name, "-n", release, "--wait", "--timeout=120s")
    assert crd.get_json("clusterroles", "-l", label)["items"] == []
    assert api.get(DEPLOYMENT, release, f"mls-op-{run_id}") is None
