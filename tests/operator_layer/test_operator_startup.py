"""`mlserving operator` as a real process against a small HTTP stand-in of the API server: a
start-up check that cannot pass stops the operator at once, with the fix in the message.
(The full operator runs against a real API server in tests/operator_cluster/.)"""

import subprocess
import sys
import time

import pytest
import yaml
from api_stand_in import ApiStandIn, not_found
from mlserving.operator.kinds import TABLE


def write_kubeconfig(tmp_path, server: str) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}],
        "clusters": [{"name": "t", "cluster": {"server": server}}],
        "users": [{"name": "t", "user": {"token": "secret-token"}}]}))
    return str(path)


def clean_env(tmp_path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MLSERVING_OPERATOR_ID": "op-test"}


def run_operator(tmp_path, routes: dict, *args) -> tuple[subprocess.CompletedProcess, ApiStandIn]:
    """The operator against a stand-in answering ``routes[(method, path)]`` (else 404)."""
    stand_in = ApiStandIn(lambda method, path, _headers: routes.get((method, path.split("?")[0]))
                          or not_found(path))
    try:
        proc = subprocess.run([sys.executable, "-m", "mlserving.cli.main", "operator", "--kubeconfig",
                               write_kubeconfig(tmp_path, stand_in.url), *args], env=clean_env(tmp_path),
                              capture_output=True, text=True, timeout=120, check=False)
    finally:
        stand_in.close()
    return proc, stand_in


def test_a_missing_crd_stops_the_operator_and_says_kubectl_apply_k_crds(tmp_path):
    proc, stand_in = run_operator(tmp_path, {}, "--namespace", "team-a")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "mlserving operator: error: the CRD modeldeployments.mlserving.io" in proc.stderr
    assert "is not installed: kubectl apply -k crds/" in proc.stderr and "Traceback" not in proc.stderr
    assert ("GET", "/apis/mlserving.io", "Bearer secret-token") in [s[:3] for s in stand_in.seen]


@pytest.mark.parametrize("watched, lease_namespace", [(["--namespace", "team-a"], "team-a"), ([], "mlserving-system")])
def test_a_lease_namespace_that_does_not_exist_stops_the_operator_with_the_fix(tmp_path, watched, lease_namespace):
    discovery = (200, {"kind": "APIGroup", "name": "mlserving.io",
                       "versions": [{"groupVersion": "mlserving.io/v1alpha1", "version": "v1alpha1"}]})
    proc, stand_in = run_operator(tmp_path, {("GET", "/apis/mlserving.io"): discovery}, *watched)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"namespace {lease_namespace!r} does not exist" in proc.stderr and "Traceback" not in proc.stderr
    assert f"kubectl create namespace {lease_namespace}" in proc.stderr
    assert ("POST", f"/apis/coordination.k8s.io/v1/namespaces/{lease_namespace}/leases",
            "Bearer secret-token") in [(m, p.split("?")[0], a) for m, p, a, _ in stand_in.seen]


def discovery_documents() -> dict[str, dict]:
    """API discovery as the API server serves it, for the kinds the operator knows (kopf asks)."""
    docs = {"/api": {"kind": "APIVersions", "versions": ["v1"]}}
    by_version: dict[str, list] = {}
    for kind in TABLE:
        by_version.setdefault(kind.api_version, []).append(kind)
    groups = []
    for api_version, group_kinds in by_version.items():
        resources = [{"name": k.plural, "singularName": k.kind.lower(), "namespaced": k.namespaced, "kind": k.kind,
                      "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]} for k in group_kinds]
        docs["/api/v1" if api_version == "v1" else f"/apis/{api_version}"] = {
            "kind": "APIResourceList", "groupVersion": api_version, "resources": resources}
        if "/" in api_version:
            group, version = api_version.split("/")
            entry = {"groupVersion": api_version, "version": version}
            groups.append({"name": group, "versions": [entry], "preferredVersion": entry})
    docs["/apis"] = {"kind": "APIGroupList", "groups": groups}
    return docs


DISCOVERY = discovery_documents()


def test_kopf_logs_in_with_the_operators_own_credentials_without_the_kubernetes_package(tmp_path):
    # The operator extra does not pull the kubernetes package (tests/test_extras.py); the test
    # environment may hold it for other clients, so it is hidden from this operator process.
    hidden = tmp_path / "hidden" / "kubernetes"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('the kubernetes package is hidden by the test')\n")
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "mlserving-operator", "namespace": "team-a", "resourceVersion": "1"}, "spec": {}}
    discovery = {"kind": "APIGroup", "name": "mlserving.io",
                 "versions": [{"groupVersion": "mlserving.io/v1alpha1", "version": "v1alpha1"}]}

    def answer(method, path, _headers):
        bare = path.split("?")[0]
        if bare == "/apis/mlserving.io":
            return 200, discovery
        if bare in DISCOVERY:
            return 200, DISCOVERY[bare]
        if bare.endswith("/leases"):
            return 201, lease
        if bare.endswith("/leases/mlserving-operator"):
            return (404, not_found(bare)[1]) if method == "GET" and len(stand_in.seen) < 3 else (200, lease)
        if "watch=" in path:
            return 200, []
        return 200, {"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []}

    stand_in = ApiStandIn(answer)
    proc = subprocess.Popen([sys.executable, "-m", "mlserving.cli.main", "operator", "--kubeconfig",
                             write_kubeconfig(tmp_path, stand_in.url), "--namespace", "team-a"],
                            env={**clean_env(tmp_path), "PYTHONPATH": str(hidden.parent)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # kopf's own requests: its API discovery (the operator's KubeApi never reads /apis).
    kopf_paths = {"/api", "/apis", "/apis/apps/v1"}
    try:
        deadline = time.monotonic() + 90
        while not kopf_paths <= {p.split("?")[0] for _, p, _, _ in stand_in.seen}:
            assert proc.poll() is None and time.monotonic() < deadline, (
                proc.stdout.read() if proc.poll() else "\n".join(sorted({p for _, p, _, _ in stand_in.seen})))
            time.sleep(0.2)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
        stand_in.close()
    kopf_requests = [a for _, p, a, _ in stand_in.seen if p.split("?")[0] in kopf_paths]
    assert kopf_requests and set(kopf_requests) == {"Bearer secret-token"}, out[-3000:]
    assert "Activity 'login' succeeded" in out and "HTTP Request:" not in out, out[-3000:]
