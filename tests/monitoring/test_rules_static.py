"""The rules, the dashboard and the scrape configuration, checked without a running Prometheus."""

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml
from mlserving.operator.monitoring_rules import (
    ALERT_NAMES,
    RECORDED_NAMES,
    RuleParams,
    render_file,
    rule_groups,
)

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "monitoring" / "rules" / "mlserving.rules.yaml"
RULE_TESTS = REPO / "monitoring" / "rules" / "tests" / "mlserving.test.yaml"
DASHBOARD = REPO / "monitoring" / "dashboards" / "mlserving.json"
PROMQL_WORDS = {"sum", "by", "max", "min", "rate", "histogram_quantile", "ignoring", "group_left", "or", "and",
                "on", "without", "le", "up"}


def test_committed_rules_file_is_the_rendering_of_the_one_source():
    assert RULES.read_text() == render_file(), "run hack/render-monitoring.py"
    result = subprocess.run([sys.executable, str(REPO / "hack" / "render-monitoring.py"), "--check"], check=False)
    assert result.returncode == 0


def test_promtool_checks_the_rules(promtool):
    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_tests_pass(promtool):
    result = subprocess.run([promtool, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_silent_case():
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing, silent = set(), set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else silent).add(check["alertname"])
    assert firing >= set(ALERT_NAMES) and silent >= set(ALERT_NAMES)


def test_every_alert_names_the_model_deployment_and_variant_with_summary_description_severity():
    for rule in rule_groups()[1]["rules"]:
        assert rule["labels"]["severity"] in ("info", "warning", "critical")
        summary = rule["annotations"]["summary"]
        assert "$labels.model_deployment" in summary and rule["annotations"]["description"]
        assert any(f"$labels.{v}" in summary for v in ("pod_variant", "variant", "pod")), summary


def test_for_durations_and_thresholds_are_rendering_parameters():
    rules = {r.get("alert"): r for r in rule_groups(RuleParams(for_drift="3s", drift_psi=0.5,
                                                                latency_p95_ms=250))[1]["rules"]}
    assert rules["MLServingFeatureDrift"]["for"] == "3s" and "> 0.5 " in rules["MLServingFeatureDrift"]["expr"]
    assert rules["MLServingHighLatencyP95"]["expr"].endswith("> 0.25")
    scoped = rule_groups(RuleParams(matchers='namespace="a",model_deployment="b"'))
    for rule in scoped[0]["rules"] + scoped[1]["rules"]:
        assert 'model_deployment="b"' in rule["expr"], rule


def exported_series() -> set[str]:
    """Every series name our processes export (server, drift, router), from their real registries."""
    from mlserving.server.drift import DriftGauges
    from mlserving.server.metrics import ServerMetrics
    from mlserving.server.router.metrics import RouterMetrics

    server = ServerMetrics("m", "v")
    DriftGauges(server.registry, "m", "v", ["f"])
    names = set()
    for registry in (server.registry, RouterMetrics().registry):
        for family in registry.collect():
            names.add(family.name)
            names.update(s.name for s in family.samples)
            if family.type == "histogram":
                names.update(f"{family.name}_{suffix}" for suffix in ("bucket", "count", "sum"))
            if family.type == "counter":
                names.add(f"{family.name}_total")
    return names | {"up"}  # Prometheus's own, per target


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


def series_names(expr: str) -> set[str]:
    expr = re.sub(r"label_values\((.*),\s*[a-zA-Z_]+\)$", r"\1", expr)  # the variable's label is not a series
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_strings)
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*(?=\s*[{)\[]|\s*$)", without_ranges))
    labels = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*[=!~]", without_strings))
    grouped = {w.strip() for g in re.findall(r"(?:by|on|ignoring)\s*\(([^)]*)\)", expr) for w in g.split(",")}
    return {n for n in names if n not in PROMQL_WORDS | labels | grouped} | ({"up"} & names)


def test_every_series_the_dashboard_names_is_exported_or_recorded():
    known = exported_series() | set(RECORDED_NAMES)
    named = set().union(*(series_names(e) for e in dashboard_expressions()))
    assert named, "no series found in the dashboard"
    assert named <= known, f"dashboard names series nobody exports or records: {sorted(named - known)}"
    assert {"mlserving:router_split:percent", "mlserving_router_variant_weight", "model_feature_drift_psi",
            "up"} <= named


def test_dashboard_has_the_variables_and_panels_users_look_for():
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"namespace", "model_deployment", "variant"} <= variables
    titles = " | ".join(p["title"].lower() for p in dashboard["panels"])
    for words in ("request rate", "split", "p50 / p95 / p99", "error ratio", "fraud", "psi", "pods"):
        assert words in titles, words


def test_plain_prometheus_config_discovers_annotated_pods_and_attaches_the_rule_labels():
    config = yaml.safe_load((REPO / "monitoring" / "prometheus" / "prometheus.yml").read_text())
    job = config["scrape_configs"][0]
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    relabel = job["relabel_configs"]
    targets = {r.get("target_label") for r in relabel}
    assert {"namespace", "pod", "model_deployment", "pod_variant", "pod_version", "__address__",
            "__metrics_path__"} <= targets
    keep = next(r for r in relabel if r.get("action") == "keep")
    assert keep["source_labels"] == ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]
    address = next(r for r in relabel if r.get("target_label") == "__address__")
    assert re.fullmatch(address["regex"], "10.1.2.3:8000;9090")
    assert re.sub(address["regex"].replace("(?:", "(?:"), address["replacement"].replace("$", "\\"),
                  "10.1.2.3:8000;9090") == "10.1.2.3:9090"


def test_docs_have_a_runbook_line_per_alert_and_every_recording_rule():
    docs = (REPO / "docs" / "monitoring.md").read_text()
    for name in ALERT_NAMES:
        assert f"| `{name}` |" in docs, name
    for name in RECORDED_NAMES:
        assert f"`{name}`" in docs or f"`:{name.rsplit(':', 1)[1]}`" in docs, name
