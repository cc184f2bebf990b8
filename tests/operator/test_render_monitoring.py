"""spec.monitoring: the PodMonitor and PrometheusRule children, their defaults and validation."""

import pytest
import yaml
from mlserving.operator.children.monitoring import rule_params
from mlserving.operator.monitoring_rules import ALERT_NAMES, RECORDED_NAMES
from mlserving.operator.spec import Monitoring, SpecError, parse
from render_helpers import SETTINGS, make_md, render

WITH_CRDS = SETTINGS.with_monitoring(True)
CRD = "crds/modeldeployments.mlserving.io.yaml"


def test_no_monitoring_children_without_the_prometheus_operator_crds():
    assert not [k for k in render(make_md()) if k[0] in ("PodMonitor", "PrometheusRule")]


def test_pod_monitor_scrapes_the_metrics_port_with_pod_labels_renamed():
    children = render(make_md(), WITH_CRDS)
    monitor = children[("PodMonitor", "fraud")]
    assert monitor["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] == "fraud"
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    targets = {r["targetLabel"]: r["sourceLabels"][0] for r in endpoint["relabelings"]}
    assert targets == {"model_deployment": "__meta_kubernetes_pod_label_mlserving_io_model_deployment",
                       "pod_variant": "__meta_kubernetes_pod_label_mlserving_io_variant",
                       "pod_version": "__meta_kubernetes_pod_label_mlserving_io_model_version"}
    # Every pod the PodMonitor selects exposes a port named "metrics".
    for (kind, _), child in children.items():
        if kind == "Deployment":
            ports = {p["name"] for p in child["spec"]["template"]["spec"]["containers"][0]["ports"]}
            assert "metrics" in ports


def test_prometheus_rule_is_the_monitoring_rules_source_scoped_with_the_thresholds():
    md = make_md(monitoring={"latencyP95Ms": 250, "errorRatio": 0.05, "driftPSI": 0.4})
    rule = render(md, WITH_CRDS)[("PrometheusRule", "fraud")]
    recording, alerts = rule["spec"]["groups"]
    assert [r["record"] for r in recording["rules"]] == list(RECORDED_NAMES)
    assert [r["alert"] for r in alerts["rules"]] == list(ALERT_NAMES)
    for r in recording["rules"] + alerts["rules"]:
        assert 'namespace="team-a",model_deployment="fraud"' in r["expr"]
    by_name = {r["alert"]: r["expr"] for r in alerts["rules"]}
    assert by_name["MLServingHighLatencyP95"].endswith("> 0.25")
    assert "> 0.05" in by_name["MLServingHighErrorRatio"] and "> 0.4 " in by_name["MLServingFeatureDrift"]
    assert rule_params(__import__("mlserving.operator.children.common", fromlist=["Context"]).Context(
        parse(md), WITH_CRDS)).latency_p95_ms == 250


def test_monitoring_off_leaves_the_children_out():
    children = render(make_md(monitoring={"podMonitor": False, "rules": False}), WITH_CRDS)
    assert not [k for k in children if k[0] in ("PodMonitor", "PrometheusRule")]
    only_rules = render(make_md(monitoring={"podMonitor": False}), WITH_CRDS)
    assert ("PrometheusRule", "fraud") in only_rules and ("PodMonitor", "fraud") not in only_rules


@pytest.mark.parametrize("monitoring, field", [
    ({"errorRatio": 0}, "spec.monitoring.errorRatio"),
    ({"errorRatio": 1.5}, "spec.monitoring.errorRatio"),
    ({"latencyP95Ms": 0}, "spec.monitoring.latencyP95Ms"),
    ({"driftPSI": -1}, "spec.monitoring.driftPSI"),
    ({"podMonitor": "yes"}, "spec.monitoring.podMonitor"),
])
def test_invalid_thresholds_name_the_field(monitoring, field):
    with pytest.raises(SpecError) as info:
        parse(make_md(monitoring=monitoring))
    assert info.value.field == field


def test_crd_defaults_and_bounds_are_the_parsers():
    from pathlib import Path

    crd = yaml.safe_load((Path(__file__).resolve().parents[2] / CRD).read_text())
    props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    schema = props["monitoring"]["properties"]
    defaults = Monitoring()
    assert schema["podMonitor"]["default"] is defaults.pod_monitor and schema["rules"]["default"] is defaults.rules
    assert schema["latencyP95Ms"]["default"] == defaults.latency_p95_ms
    assert schema["errorRatio"]["default"] == defaults.error_ratio
    assert schema["driftPSI"]["default"] == defaults.drift_psi
    assert (schema["errorRatio"]["minimum"], schema["errorRatio"]["maximum"]) == (0, 1)
