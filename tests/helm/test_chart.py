"""charts/mlserving: one source with deploy/ and crds/, values that change what they say, a schema
that refuses wrong values naming the field, `helm lint --strict`."""

import json
import pathlib
import subprocess
import tomllib

import pytest
import yaml
from helm_kit import CHART, REPO, by_identity, refusal, render, run_helm, without_helm_labels
from rbac_kit import grants, missing_grants

VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def test_chart_version_and_app_version_are_the_project_version():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (chart["version"], chart["appVersion"]) == (VERSION, VERSION)


def test_chart_crd_is_the_crd():
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == ["modeldeployments.mlserving.io.yaml"]
    crd = REPO / "crds" / "modeldeployments.mlserving.io.yaml"
    assert (CHART / "crds" / crd.name).read_bytes() == crd.read_bytes(), (
        f"copy {crd.relative_to(REPO)} to charts/mlserving/crds/")


@pytest.mark.parametrize("values", [None, {"operator": {"watchNamespaces": ["team-a", "team-b"]}},
                                    {"operator": {"podMonitor": {"enabled": True}}}],
                         ids=["defaults", "namespaced", "podmonitor"])
def test_lint_strict(helm, values):
    proc = run_helm(helm, "lint", "--strict", str(CHART), values=values, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def kustomize_deploy(kubectl: pathlib.Path) -> list[dict]:
    out = subprocess.run([str(kubectl), "kustomize", str(REPO / "deploy")], capture_output=True, text=True,
                         check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_defaults_render_exactly_what_deploy_installs(helm, cluster_binaries):
    deploy = by_identity([d for d in kustomize_deploy(cluster_binaries / "kubectl") if d["kind"] != "Namespace"])
    chart = by_identity([without_helm_labels(d) for d in render(helm, crds=True)])
    assert sorted(chart) == sorted(deploy)
    for key, obj in deploy.items():
        assert chart[key] == obj, f"{key}: the chart's defaults and deploy/ differ"


def test_helm_labels_are_on_every_template_object(helm):
    for doc in render(helm):
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm" and labels["app.kubernetes.io/version"] == VERSION


def kinds_of(docs):
    return sorted({d["kind"] for d in docs})


def test_watch_namespaces_gives_roles_in_each_and_nothing_cluster_wide(helm):
    docs = render(helm, {"operator": {"watchNamespaces": ["team-a", "team-b"]}}, namespace="ops")
    assert kinds_of(docs) == ["Deployment", "Role", "RoleBinding", "ServiceAccount"]
    for ns in ("team-a", "team-b"):
        roles = [d for d in docs if d["kind"] == "Role" and d["metadata"]["namespace"] == ns]
        assert sorted(r["metadata"]["name"] for r in roles) == ["mlserving-operator", "mlserving-operator-secrets"]
        rules = [rule for r in roles for rule in r["rules"]]
        # The Lease is the one thing not granted in a watched namespace: it lives in the release's.
        assert missing_grants(grants(rules)) == ["coordination.k8s.io/leases: ['create', 'get', 'update']"]
        bindings = [d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["namespace"] == ns]
        assert {b["roleRef"]["name"] for b in bindings} == {r["metadata"]["name"] for r in roles}
        for b in bindings:
            assert b["subjects"] == [{"kind": "ServiceAccount", "name": "mlserving-operator", "namespace": "ops"}]
    (lease,) = [d for d in docs if d["kind"] == "Role" and d["metadata"]["namespace"] == "ops"]
    assert lease["rules"] == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                               "verbs": ["get", "create", "update"]}]
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--namespace")] == ["--namespace=team-a", "--namespace=team-b"]


def test_default_cluster_roles_grant_the_kinds_table(helm):
    rules = [r for d in render(helm) if d["kind"] == "ClusterRole" for r in d["rules"]]
    assert missing_grants(grants(rules)) == []


def operator_pod(docs):
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    return dep["spec"]["template"]["spec"]


def test_values_reach_the_operator_pod(helm):
    values = {
        "images": {"operator": {"registry": "registry.example:5000", "repository": "ml/op", "tag": "1.2.3",
                                "digest": "sha256:" + "a" * 64},
                   "server": {"registry": "registry.example:5000", "repository": "ml/server", "tag": "9.9"},
                   "pullPolicy": "Always", "pullSecrets": ["regcred"]},
        "operator": {"replicas": 3, "metricsPort": 9191,
                     "leaderElection": {"leaseName": "ops-lease", "leaseDurationSeconds": 20},
                     "settings": {"logLevel": "DEBUG", "clusterDomain": "corp.local", "routerMinReplicas": 1,
                                  "routerMaxReplicas": 4, "resyncSeconds": 60, "workers": 2},
                     "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}},
                     "nodeSelector": {"pool": "system"},
                     "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
                     "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                         "nodeSelectorTerms": [{"matchExpressions": [
                             {"key": "pool", "operator": "In", "values": ["system"]}]}]}}},
                     "priorityClassName": "system-cluster-critical",
                     "podAnnotations": {"example.com/team": "ml"}},
    }
    docs = render(helm, values)
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    assert dep["spec"]["replicas"] == 3
    pod = operator_pod(docs)
    (c,) = pod["containers"]
    assert c["image"] == "registry.example:5000/ml/op:1.2.3@sha256:" + "a" * 64
    assert c["imagePullPolicy"] == "Always" and pod["imagePullSecrets"] == [{"name": "regcred"}]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env == {"MLSERVING_SERVER_IMAGE": "registry.example:5000/ml/server:9.9",
                   "MLSERVING_IMAGE_PULL_POLICY": "Always", "MLSERVING_LOG_LEVEL": "DEBUG",
                   "MLSERVING_CLUSTER_DOMAIN": "corp.local", "MLSERVING_ROUTER_MIN_REPLICAS": "1",
                   "MLSERVING_ROUTER_MAX_REPLICAS": "4", "MLSERVING_RESYNC_SECONDS": "60",
                   "MLSERVING_OPERATOR_WORKERS": "2", "MLSERVING_LEASE_NAME": "ops-lease",
                   "MLSERVING_LEASE_DURATION": "20", "POD_NAME": None, "POD_NAMESPACE": None}
    assert "--metrics-port=9191" in c["args"]
    assert {"name": "metrics", "containerPort": 9191, "protocol": "TCP"} in c["ports"]
    assert c["resources"] == values["operator"]["resources"]
    assert pod["nodeSelector"] == {"pool": "system"}
    assert pod["tolerations"] == values["operator"]["tolerations"]
    assert pod["affinity"] == values["operator"]["affinity"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert dep["spec"]["template"]["metadata"]["annotations"] == {"example.com/team": "ml"}


def test_the_environment_the_chart_renders_is_what_the_operator_reads(helm):
    """Every MLSERVING_* the chart can set is read by the operator (a renamed variable fails here)."""
    values = {"operator": {"leaderElection": {"leaseName": "x", "leaseDurationSeconds": 5},
                           "settings": {"logLevel": "INFO", "clusterDomain": "c.local", "routerMinReplicas": 1,
                                        "routerMaxReplicas": 2, "resyncSeconds": 5, "workers": 1}}}
    names = {e["name"] for e in operator_pod(render(helm, values))["containers"][0]["env"]}
    sources = "".join(p.read_text() for p in (REPO / "operator").glob("*.py"))
    assert [n for n in names if f'"{n}"' not in sources] == []


def test_metrics_off_and_podmonitor(helm):
    off = operator_pod(render(helm, {"operator": {"metricsPort": 0}}))["containers"][0]
    assert [p["name"] for p in off["ports"]] == ["health"] and "--metrics-port=0" in off["args"]
    assert "PodMonitor" not in kinds_of(render(helm))
    docs = render(helm, {"operator": {"podMonitor": {"enabled": True, "interval": "15s",
                                                     "labels": {"release": "kube-prometheus"}}}}, namespace="ops")
    (pm,) = [d for d in docs if d["kind"] == "PodMonitor"]
    assert pm["metadata"]["namespace"] == "ops" and pm["metadata"]["labels"]["release"] == "kube-prometheus"
    assert pm["spec"]["podMetricsEndpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s"}]
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    assert pm["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    stderr = refusal(helm, {"operator": {"podMonitor": {"enabled": True}, "metricsPort": 0}})
    assert "operator.podMonitor.enabled needs operator.metricsPort" in stderr


def test_read_secrets_false_drops_the_secret_rules(helm):
    for values in ({"operator": {"readSecrets": False}},
                   {"operator": {"readSecrets": False, "watchNamespaces": ["a"]}}):
        rules = [r for d in render(helm, values) if d["kind"] in ("Role", "ClusterRole") for r in d["rules"]]
        assert ("", "secrets") not in grants(rules)


@pytest.mark.parametrize(("values", "field"), [
    ({"operator": {"replicas": "2"}}, "/operator/replicas"),
    ({"operator": {"replica": 2}}, "replica"),
    ({"operatr": {}}, "operatr"),
    ({"images": {"pullPolicy": "Sometimes"}}, "/images/pullPolicy"),
    ({"images": {"server": {"tag": "latest"}}}, "/images/server/tag"),
    ({"images": {"operator": {"digest": "abc"}}}, "/images/operator/digest"),
    ({"operator": {"watchNamespaces": ["Team_A"]}}, "/operator/watchNamespaces/0"),
    ({"operator": {"settings": {"logLevel": "LOUD"}}}, "/operator/settings/logLevel"),
    ({"operator": {"settings": {"resyncSeconds": 1}}}, "/operator/settings/resyncSeconds"),
    ({"operator": {"settings": {"MLSERVING_LOG_LEVEL": "INFO"}}}, "MLSERVING_LOG_LEVEL"),
    ({"operator": {"leaderElection": {"leaseDurationSeconds": 1}}}, "/operator/leaderElection/leaseDurationSeconds"),
], ids=lambda v: json.dumps(v) if isinstance(v, dict) else v)
def test_schema_refuses_a_wrong_value_naming_the_field(helm, values, field):
    stderr = refusal(helm, values)
    assert "values don't meet the specifications of the schema" in stderr, stderr
    assert field in stderr, stderr


def schema_keys(node: dict, path: str = ""):
    for name, child in (node.get("properties") or {}).items():
        yield f"{path}.{name}".lstrip(".")
        yield from schema_keys(child, f"{path}.{name}")


def test_docs_and_values_file_describe_every_value():
    schema = json.loads((CHART / "values.schema.json").read_text())
    docs = (REPO / "docs" / "helm.md").read_text()
    values_file = (CHART / "values.yaml").read_text()
    # (operator.resources' requests/limits/claims are Kubernetes' own.)
    keys = [k for k in schema_keys(schema) if not k.startswith("operator.resources.")]
    assert "operator.settings.workers" in keys
    assert [k for k in keys if k.rsplit(".", 1)[-1] not in docs] == []
    assert [k for k in keys if f"{k.rsplit('.', 1)[-1]}:" not in values_file] == []
