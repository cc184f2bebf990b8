"""spec.security on a real API server: explained, defaulted, bad input refused with the field
named, and the children of a secured ModelDeployment (NetworkPolicies, the armed router) admitted."""

from __future__ import annotations

import json

import pytest
from mlserving.operator.children import desired_children
from mlserving.operator.settings import OperatorSettings
from test_crd_cluster import crd_installed, dry_run, md  # noqa: F401 (crd_installed is a fixture)

pytestmark = pytest.mark.cluster

SINGLE = [{"name": "stable", "version": "1.0.0", "weight": 100}]
SELECTOR_RULE = "each entry needs namespaceSelector and/or podSelector, or ipBlock"

INVALID = {
    "peer-is-a-string": ({"allowedFrom": ["team-payments"]}, "spec.security.allowedFrom[0]"),
    "peer-is-empty": ({"allowedFrom": [{}]}, f"spec.security.allowedFrom[]: {SELECTOR_RULE}"),
    "peer-unknown-field": ({"allowedFrom": [{"namespace": "payments"}]}, 'unknown field "spec.security.allowedFrom[0].namespace"'),
    "metrics-peer-not-a-selector": ({"metricsFrom": [{"namespaceSelector": "monitoring"}]},
                                    "spec.security.metricsFrom[0].namespaceSelector"),
    "ip-block-with-selector": ({"allowedFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]},
                               "spec.security.allowedFrom[]: ipBlock cannot be combined"),
    "bad-cidr": ({"allowedFrom": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}, "ipBlock.cidr: must be a CIDR"),
    "in-without-values": ({"allowedFrom": [{"podSelector": {"matchExpressions": [{"key": "app", "operator": "In"}]}}]},
                          "matchExpressions[].values: must be non-empty for In and NotIn"),
    "bad-label-value": ({"allowedFrom": [{"podSelector": {"matchLabels": {"app": "-x"}}}]},
                        "spec.security.allowedFrom[0].podSelector.matchLabels.app"),
    "bad-label-key": ({"metricsFrom": [{"namespaceSelector": {"matchLabels": {"bad key!": "x"}}}]},
                      "spec.security.metricsFrom[].namespaceSelector.matchLabels: every key must be a label key"),
    "rate-zero": ({"rateLimit": {"requestsPerSecond": 0}}, "spec.security.rateLimit.requestsPerSecond"),
    "rate-negative": ({"rateLimit": {"requestsPerSecond": -5}}, "spec.security.rateLimit.requestsPerSecond"),
    "burst-zero": ({"rateLimit": {"requestsPerSecond": 5, "burst": 0}}, "spec.security.rateLimit.burst"),
    "key-unknown": ({"rateLimit": {"requestsPerSecond": 5, "key": "ip"}}, "spec.security.rateLimit.key"),
    "token-key-without-auth": ({"rateLimit": {"requestsPerSecond": 5, "key": "token"}},
                               "spec.security.rateLimit.key: 'token' needs spec.security.auth"),
    "header-key-without-sticky-header": ({"rateLimit": {"requestsPerSecond": 5, "key": "header"}},
                                         "spec.security.rateLimit.key: 'header' needs spec.routing.stickyHeader"),
    "secret-name-invalid": ({"auth": {"secretName": "Fraud_Tokens"}}, "spec.security.auth.secretName"),
    "allowed-from-empty": ({"allowedFrom": []}, "spec.security.allowedFrom"),
}


def secured(security: dict, **spec) -> dict:
    obj = md(variants=SINGLE, security=security)
    obj["spec"].pop("routing", None)
    obj["spec"].update(spec)
    return obj


@pytest.mark.parametrize("case", sorted(INVALID))
def test_bad_security_input_is_refused_naming_the_field(crd_installed, k8s_namespace, case):  # noqa: F811
    security, fragment = INVALID[case]
    proc = dry_run(crd_installed, k8s_namespace, secured(security))
    assert proc.returncode != 0, f"{case} was accepted"
    assert fragment in proc.stderr, proc.stderr


def test_header_key_with_a_sticky_header_and_token_key_with_auth_are_accepted(crd_installed, k8s_namespace):  # noqa: F811
    for security, spec in (({"rateLimit": {"requestsPerSecond": 5, "key": "header"}}, {"routing": {"stickyHeader": "x-user-id"}}),
                           ({"rateLimit": {"requestsPerSecond": 0.5, "key": "token"}, "auth": {"secretName": "t"}}, {})):
        proc = dry_run(crd_installed, k8s_namespace, secured(security, **spec))
        assert proc.returncode == 0, proc.stderr


def test_security_defaults_and_explain(crd_installed, k8s_namespace):  # noqa: F811
    stored = json.loads(dry_run(crd_installed, k8s_namespace, secured({"rateLimit": {"requestsPerSecond": 5}})).stdout)
    sec = stored["spec"]["security"]
    assert sec["networkPolicy"] is True and sec["rateLimit"]["key"] == "client"
    assert sec["metricsFrom"] == [{"namespaceSelector": {"matchLabels": {"mlserving.io/monitoring": "true"}}}]
    plain = md()
    plain["spec"].pop("security", None)
    stored = json.loads(dry_run(crd_installed, k8s_namespace, plain).stdout)
    assert stored["spec"]["security"]["networkPolicy"] is True
    out = crd_installed.kubectl("explain", "modeldeployment.spec.security").stdout
    for field in ("networkPolicy", "allowedFrom", "metricsFrom", "auth", "rateLimit", "tls"):
        assert f"  {field}\t" in out or f"  {field} " in out, f"{field} missing from kubectl explain:\n{out}"
    assert "who may call the router" in crd_installed.kubectl(
        "explain", "md.spec.security.allowedFrom").stdout.lower()
    assert "token bucket" in crd_installed.kubectl("explain", "md.spec.security.rateLimit").stdout


def test_children_of_a_secured_model_deployment_are_admitted(crd_installed, k8s_namespace):  # noqa: F811
    cluster = crd_installed
    obj = secured({"auth": {"secretName": "fraud-tokens"}, "tls": {"secretName": "fraud-tls"},
                   "rateLimit": {"requestsPerSecond": 50, "burst": 100, "key": "token"},
                   "allowedFrom": [{"namespaceSelector": {"matchLabels": {"team": "payments"}},
                                    "podSelector": {"matchExpressions": [{"key": "app", "operator": "In",
                                                                          "values": ["checkout"]}]}},
                                   {"ipBlock": {"cidr": "192.0.2.0/24", "except": ["192.0.2.128/25"]}}]})
    obj["metadata"]["name"] = "secured"
    cluster.kubectl("create", "-n", k8s_namespace, "-f", "-", input=json.dumps(obj))
    stored = cluster.get_json("md", "secured", namespace=k8s_namespace)
    children = desired_children(stored, OperatorSettings.from_env({}))
    assert {c["kind"] for c in children} >= {"NetworkPolicy", "Deployment", "Service", "Role"}
    for child in children:
        proc = cluster.kubectl("apply", "--server-side", "--field-manager=mlserving-operator", "--force-conflicts",
                               "-f", "-", input=json.dumps(child), check=False)
        assert proc.returncode == 0, f"{child['kind']} {child['metadata']['name']}: {proc.stderr}"
        assert "Warning" not in proc.stderr, f"{child['kind']} {child['metadata']['name']}: {proc.stderr}"
    policies = cluster.get_json("networkpolicies", namespace=k8s_namespace)["items"]
    assert sorted(p["metadata"]["name"] for p in policies) == ["secured-router", "secured-variants"]
