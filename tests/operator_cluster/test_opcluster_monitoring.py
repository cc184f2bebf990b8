"""spec.monitoring on the real API server with the prometheus-operator's published CRDs (from its
Go module's source, hack/prometheus-operator-crds.sh): the PodMonitor and PrometheusRule are
admitted, owned by the ModelDeployment, removed with it and when spec.monitoring turns them off;
an invalid threshold is refused by the API server naming the field."""

import json
import subprocess

import pytest
import yaml
from helm_kit import template
from mlserving.operator import conditions
from mlserving.operator.children.common import Context
from mlserving.operator.children.monitoring import rule_params
from mlserving.operator.kinds import KINDS
from mlserving.operator.monitoring_rules import rule_groups
from mlserving.operator.settings import OperatorSettings
from mlserving.operator.spec import parse
from opcluster_kit import REPO, create_md, load_example, md_status, patch_md, wait_for

pytestmark = pytest.mark.cluster

POD_MONITOR = KINDS[("monitoring.coreos.com/v1", "PodMonitor")]
PROMETHEUS_RULE = KINDS[("monitoring.coreos.com/v1", "PrometheusRule")]
MD = KINDS[("mlserving.io/v1alpha1", "ModelDeployment")]


def test_without_the_crds_the_status_says_monitoring_is_not_ready(crd, api, op_ns):
    if crd.kubectl("get", "crd", "podmonitors.monitoring.coreos.com", check=False).returncode == 0:
        # A reused cluster: take them away (the next test installs them again).
        crd.kubectl("delete", "crd", "podmonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com",
                    "--wait=true", "--timeout=60s")
    md = create_md(api, op_ns, load_example("fraud-single.yaml"))
    name = md["metadata"]["name"]

    def missing():
        found = [c for c in md_status(api, op_ns, name).get("conditions", [])
                 if c["type"] == conditions.MONITORING_READY]
        return found and found[0]

    condition = wait_for("MonitoringReady=False", missing, timeout=90)  # the operator re-probes every minute
    assert condition["status"] == "False" and condition["reason"] == conditions.PROMETHEUS_OPERATOR_MISSING
    assert "monitoring.coreos.com/v1" in condition["message"]
    assert md_status(api, op_ns, name).get("phase") != "Failed"  # serving goes on without monitoring
    api.delete(MD, op_ns, name)


@pytest.fixture(scope="module")
def monitoring_crds(crd):
    result = subprocess.run(["bash", str(REPO / "hack" / "prometheus-operator-crds.sh")], capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"hack/prometheus-operator-crds.sh failed: {result.stderr}")
    directory = result.stdout.strip().splitlines()[-1]
    crd.kubectl("apply", "--server-side", "--force-conflicts", "-f", directory)
    for name in ("podmonitors", "prometheusrules"):
        crd.kubectl("wait", "--for=condition=Established", f"crd/{name}.monitoring.coreos.com", "--timeout=60s")
    return crd


def test_the_charts_operator_pod_monitor_is_admitted(helm, monitoring_crds, fresh_ns):
    """charts/mlserving with operator.podMonitor.enabled, against the prometheus-operator CRD."""
    text = template(helm, {"operator": {"podMonitor": {"enabled": True}}}, namespace=fresh_ns("helm-pm"))
    (pod_monitor,) = [d for d in yaml.safe_load_all(text) if d and d["kind"] == "PodMonitor"]
    monitoring_crds.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(pod_monitor))


def owned_by(obj: dict, md: dict) -> bool:
    return any(r["uid"] == md["metadata"]["uid"] and r.get("controller") for r in obj["metadata"]["ownerReferences"])


def test_pod_monitor_and_rules_follow_the_model_deployment(monitoring_crds, api, op_ns):
    md = create_md(api, op_ns, load_example("fraud-ab.yaml"))
    name = md["metadata"]["name"]
    # The operator probes the API's groups at most once a minute: allow for a cached "absent".
    monitor = wait_for("the PodMonitor", lambda: api.get(POD_MONITOR, op_ns, name), timeout=120)
    rule = wait_for("the PrometheusRule", lambda: api.get(PROMETHEUS_RULE, op_ns, name), timeout=30)
    assert owned_by(monitor, md) and owned_by(rule, md)
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    live = api.get(MD, op_ns, name)
    expected = rule_groups(rule_params(Context(parse(live), OperatorSettings.from_env())))
    assert rule["spec"]["groups"] == expected  # admitted and stored unchanged by the real API server
    assert not [c for c in md_status(api, op_ns, name).get("conditions", [])
                if c["type"] == conditions.MONITORING_READY]

    patch_md(api, op_ns, name, lambda spec: spec.update(monitoring={"podMonitor": False, "rules": False}))
    wait_for("the PodMonitor and PrometheusRule to be pruned",
             lambda: api.get(POD_MONITOR, op_ns, name) is None and api.get(PROMETHEUS_RULE, op_ns, name) is None)

    patch_md(api, op_ns, name, lambda spec: spec.update(monitoring={"latencyP95Ms": 250}))
    rule = wait_for("the PrometheusRule again", lambda: api.get(PROMETHEUS_RULE, op_ns, name))
    alerts = {r["alert"]: r["expr"] for r in rule["spec"]["groups"][1]["rules"]}
    assert alerts["MLServingHighLatencyP95"].endswith("> 0.25")

    api.delete(MD, op_ns, name)
    wait_for("garbage collection of the monitoring children",
             lambda: api.get(POD_MONITOR, op_ns, name) is None and api.get(PROMETHEUS_RULE, op_ns, name) is None,
             timeout=90)


@pytest.mark.parametrize("monitoring, field", [({"errorRatio": 2}, "spec.monitoring.errorRatio"),
                                               ({"latencyP95Ms": 0}, "spec.monitoring.latencyP95Ms"),
                                               ({"driftPSI": 0}, "spec.monitoring.driftPSI")])
def test_invalid_thresholds_are_refused_by_the_api_server(crd, op_ns, monitoring, field):
    md = load_example("fraud-single.yaml")
    md["metadata"]["namespace"] = op_ns
    md["spec"]["monitoring"] = monitoring
    result = crd.kubectl("apply", "-f", "-", input=json.dumps(md), check=False)
    assert result.returncode != 0 and field in result.stderr, result.stderr
