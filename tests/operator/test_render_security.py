"""spec.security: parsing (errors naming the field), the NetworkPolicies, the router it forces and
arms (Secrets mounted, flags, TLS port and probes), and the Secret check behind the status."""

import pytest
from mlserving.operator import naming
from mlserving.operator.children import desired_children
from mlserving.operator.conditions import SECRET_INCOMPLETE, SECRET_NOT_FOUND, SECRET_UNREADABLE
from mlserving.operator.kubeapi import ApiError
from mlserving.operator.secrets import secret_problems
from mlserving.operator.settings import OperatorSettings
from mlserving.operator.spec import DEFAULT_METRICS_FROM, SpecError, parse
from render_helpers import SETTINGS, make_md, render, single

TEAM = {"namespaceSelector": {"matchLabels": {"team": "payments"}}, "podSelector": {"matchLabels": {"app": "checkout"}}}
ROUTER_PEER = {"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "fraud", "mlserving.io/variant": "router"}}}
OPERATOR_PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mlserving-system"}}}


def policy(children, name):
    return children[("NetworkPolicy", name)]["spec"]


def rules_by_port(spec):
    return {rule["ports"][0]["port"]: rule for rule in spec["ingress"]}


def router_container(children):
    return children[("Deployment", "fraud-router")]["spec"]["template"]["spec"]["containers"][0]


def test_defaults():
    sec = parse(single()).security
    assert sec.network_policy is True and sec.allowed_from is None
    assert sec.metrics_from == DEFAULT_METRICS_FROM
    assert not sec.needs_router and not parse(single()).has_router
    rate = parse(single(security={"rateLimit": {"requestsPerSecond": 2.5}})).security.rate_limit
    assert (rate.requests_per_second, rate.burst, rate.key) == (2.5, 3, "client")


@pytest.mark.parametrize(("security", "field", "fragment"), [
    ({"allowedFrom": ["team-payments"]}, "spec.security.allowedFrom[0]", "namespaceSelector"),
    ({"allowedFrom": [{}]}, "spec.security.allowedFrom[0]", "needs namespaceSelector"),
    ({"allowedFrom": [{"namespace": "payments"}]}, "spec.security.allowedFrom[0].namespace", "unknown field"),
    ({"allowedFrom": []}, "spec.security.allowedFrom", "at least one"),
    ({"allowedFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]},
     "spec.security.allowedFrom[0].ipBlock", "combined"),
    ({"allowedFrom": [{"ipBlock": {"cidr": "10.0.0.300/8"}}]}, "spec.security.allowedFrom[0].ipBlock.cidr", "CIDR"),
    ({"allowedFrom": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}]},
     "spec.security.allowedFrom[0].ipBlock.except", "strict subset"),
    ({"metricsFrom": [{"namespaceSelector": {"matchLabels": {"bad key!": "x"}}}]},
     "spec.security.metricsFrom[0].namespaceSelector.matchLabels", "label key"),
    ({"metricsFrom": [{"podSelector": {"matchLabels": {"app": "-x"}}}]},
     "spec.security.metricsFrom[0].podSelector.matchLabels[app]", "label value"),
    ({"metricsFrom": [{"podSelector": {"matchExpressions": [{"key": "app", "operator": "In"}]}}]},
     "spec.security.metricsFrom[0].podSelector.matchExpressions[0].values", "non-empty"),
    ({"metricsFrom": [{"podSelector": {"matchExpressions": [{"key": "app", "operator": "Like", "values": ["a"]}]}}]},
     "spec.security.metricsFrom[0].podSelector.matchExpressions[0].operator", "one of"),
    ({"rateLimit": {"requestsPerSecond": 0}}, "spec.security.rateLimit.requestsPerSecond", "above 0"),
    ({"rateLimit": {"requestsPerSecond": -1}}, "spec.security.rateLimit.requestsPerSecond", "above 0"),
    ({"rateLimit": {"requestsPerSecond": True}}, "spec.security.rateLimit.requestsPerSecond", "number"),
    ({"rateLimit": {"requestsPerSecond": 5, "burst": 0}}, "spec.security.rateLimit.burst", "1 to"),
    ({"rateLimit": {"requestsPerSecond": 5, "key": "ip"}}, "spec.security.rateLimit.key", "one of"),
    ({"rateLimit": {"requestsPerSecond": 5, "key": "token"}}, "spec.security.rateLimit.key", "needs spec.security.auth"),
    ({"rateLimit": {"requestsPerSecond": 5, "key": "header"}}, "spec.security.rateLimit.key", "stickyHeader"),
    ({"auth": {"secretName": "Fraud_Tokens"}}, "spec.security.auth.secretName", "Secret name"),
    ({"auth": {}}, "spec.security.auth.secretName", "required"),
    ({"tls": {"secretName": "x", "ca": "y"}}, "spec.security.tls.ca", "unknown field"),
    ({"networkPolicy": "yes"}, "spec.security.networkPolicy", "true or false"),
])
def test_security_errors_name_the_field(security, field, fragment):
    with pytest.raises(SpecError) as err:
        parse(single(security=security))
    assert err.value.field == field
    assert fragment in err.value.message


def test_ab_variants_take_serving_traffic_only_from_their_router():
    children = render(make_md())
    variants = policy(children, "fraud-variants")
    assert variants["policyTypes"] == ["Ingress"]
    assert variants["podSelector"] == {
        "matchLabels": {"mlserving.io/model-deployment": "fraud", "app.kubernetes.io/managed-by": "mlserving-operator"},
        "matchExpressions": [{"key": "mlserving.io/variant", "operator": "NotIn", "values": ["router"]}]}
    ports = rules_by_port(variants)
    assert set(ports) == {naming.HTTP_PORT, naming.METRICS_PORT}
    assert ports[naming.HTTP_PORT]["from"] == [ROUTER_PEER]
    assert ports[naming.METRICS_PORT]["from"] == [*DEFAULT_METRICS_FROM, OPERATOR_PEER]
    # The router's own pods are not variant pods, and the router policy lets anyone call it.
    router = policy(children, "fraud-router")
    assert router["podSelector"]["matchLabels"]["mlserving.io/variant"] == "router"
    ports = rules_by_port(router)
    assert "from" not in ports[naming.HTTP_PORT]
    assert ports[naming.METRICS_PORT]["from"] == [*DEFAULT_METRICS_FROM, OPERATOR_PEER]
    # The variant pods really carry what the variant selector asks for, the router pods do not.
    for name in ("fraud-stable", "fraud-candidate", "fraud-router"):
        labels = children[("Deployment", name)]["spec"]["template"]["metadata"]["labels"]
        assert labels["mlserving.io/model-deployment"] == "fraud"
        assert (labels["mlserving.io/variant"] != "router") == (name != "fraud-router")


def test_allowed_and_metrics_peers_and_operator_namespace():
    monitoring = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    md = make_md(security={"allowedFrom": [TEAM, {"ipBlock": {"cidr": "192.0.2.0/24"}}], "metricsFrom": monitoring})
    settings = OperatorSettings.from_env({"MLSERVING_SERVER_IMAGE": "r.example/s:1", "POD_NAMESPACE": "ops"})
    children = {(c["kind"], c["metadata"]["name"]): c for c in desired_children(md, settings)}
    router = rules_by_port(policy(children, "fraud-router"))
    assert router[naming.HTTP_PORT]["from"] == [TEAM, {"ipBlock": {"cidr": "192.0.2.0/24"}}]
    ops = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ops"}}}
    assert router[naming.METRICS_PORT]["from"] == [*monitoring, ops]
    # metricsFrom: [] leaves the operator's namespace alone.
    children = render(make_md(security={"metricsFrom": []}))
    assert rules_by_port(policy(children, "fraud-variants"))[naming.METRICS_PORT]["from"] == [OPERATOR_PEER]


def test_single_variant_without_router_is_open_on_its_serving_port():
    children = render(single())
    assert ("NetworkPolicy", "fraud-router") not in children
    ports = rules_by_port(policy(children, "fraud-variants"))
    assert "from" not in ports[naming.HTTP_PORT]
    assert ports[naming.METRICS_PORT]["from"] == [*DEFAULT_METRICS_FROM, OPERATOR_PEER]


def test_gateway_namespaces_may_reach_the_variants_when_an_httproute_is_rendered():
    gateway = {"parentRefs": [{"name": "public", "namespace": "edge"}, {"name": "internal"}]}
    md = make_md(routing={"gateway": gateway})
    ports = rules_by_port(policy(render(md, SETTINGS.with_gateway(True)), "fraud-variants"))
    ns = [p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
          for p in ports[naming.HTTP_PORT]["from"] if "namespaceSelector" in p]
    assert ns == ["edge", "team-a"]
    # Without the Gateway API no HTTPRoute is rendered, so nothing comes from the gateways.
    ports = rules_by_port(policy(render(md), "fraud-variants"))
    assert ports[naming.HTTP_PORT]["from"] == [ROUTER_PEER]


def test_network_policy_false_renders_none_and_policies_go_first():
    assert not [k for k in render(make_md(security={"networkPolicy": False})) if k[0] == "NetworkPolicy"]
    kinds = [c["kind"] for c in desired_children(make_md(), SETTINGS)]
    assert kinds[:2] == ["NetworkPolicy", "NetworkPolicy"]


@pytest.mark.parametrize("security", [{"auth": {"secretName": "fraud-tokens"}},
                                      {"rateLimit": {"requestsPerSecond": 50}},
                                      {"tls": {"secretName": "fraud-tls"}}])
def test_auth_rate_limit_or_tls_put_a_router_in_front_of_a_single_variant(security):
    children = render(single(security=security))
    assert ("Deployment", "fraud-router") in children and ("Role", "fraud-router") in children
    assert children[("Service", "fraud")]["spec"]["selector"]["mlserving.io/variant"] == "router"
    assert rules_by_port(policy(children, "fraud-variants"))[naming.HTTP_PORT]["from"] == [ROUTER_PEER]
    assert ("NetworkPolicy", "fraud-router") in children


def test_router_gets_the_secrets_mounted_and_the_flags():
    md = single(security={"auth": {"secretName": "fraud-tokens"}, "tls": {"secretName": "fraud-tls"},
                          "rateLimit": {"requestsPerSecond": 50, "burst": 100, "key": "token"}})
    children = render(md)
    pod = children[("Deployment", "fraud-router")]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["auth-tokens"]["secret"] == {"secretName": "fraud-tokens", "optional": True, "defaultMode": 0o440}
    assert volumes["tls"]["secret"] == {"secretName": "fraud-tls", "optional": True, "defaultMode": 0o440}
    c = router_container(children)
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts["auth-tokens"] == {"name": "auth-tokens", "mountPath": "/etc/mlserving/auth", "readOnly": True}
    assert mounts["tls"] == {"name": "tls", "mountPath": "/etc/mlserving/tls", "readOnly": True}
    args = c["args"]
    flags = dict(zip(args[1::2], args[2::2], strict=False))
    assert flags["--auth-tokens-dir"] == "/etc/mlserving/auth" and flags["--tls-dir"] == "/etc/mlserving/tls"
    assert (flags["--rate-limit-rps"], flags["--rate-limit-burst"], flags["--rate-limit-key"]) == ("50", "100", "token")
    # TLS: the serving port is named https, probed over HTTPS, and the stable Service listens on 443.
    assert c["ports"][0] == {"name": "https", "containerPort": naming.HTTP_PORT, "protocol": "TCP"}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["scheme"] == "HTTPS" and c[probe]["httpGet"]["port"] == "https"
    assert children[("Service", "fraud")]["spec"]["ports"] == [
        {"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}]
    # The variants stay plain HTTP behind the router.
    assert children[("Service", "fraud-stable")]["spec"]["ports"][0]["port"] == 80
    server = children[("Deployment", "fraud-stable")]["spec"]["template"]["spec"]["containers"][0]
    assert "scheme" not in server["readinessProbe"]["httpGet"]


def test_router_without_security_has_no_security_flags_or_volumes():
    c = router_container(render(make_md()))
    assert not [a for a in c["args"] if a.startswith(("--auth", "--tls", "--rate"))]
    assert "scheme" not in c["readinessProbe"]["httpGet"]


class SecretsApi:
    """Answers get() for Secrets from a dict; a name mapped to an ApiError raises it."""

    def __init__(self, secrets):
        self.secrets = secrets
        self.asked = []

    def get(self, kind, namespace, name, cached=False):
        assert kind.kind == "Secret"
        self.asked.append((namespace, name))
        found = self.secrets.get(name)
        if isinstance(found, ApiError):
            raise found
        return found


SECURED = single(security={"auth": {"secretName": "tokens"}, "tls": {"secretName": "cert"}})


def test_secret_check_names_a_missing_or_incomplete_secret():
    api = SecretsApi({"tokens": {"data": {".hidden": "eA==", "a": ""}}})
    problems, blocking = secret_problems(api, parse(SECURED))
    assert blocking == problems and api.asked == [("team-a", "tokens"), ("team-a", "cert")]
    assert [p.reason for p in problems] == [SECRET_INCOMPLETE, SECRET_NOT_FOUND]
    assert problems[0].message.startswith("spec.security.auth.secretName: Secret team-a/tokens has no a token")
    assert problems[1].message.startswith("spec.security.tls.secretName: Secret team-a/cert not found")
    assert not any(p.fatal for p in problems)


def test_secret_check_passes_complete_secrets_and_reports_missing_permission():
    good = {"tokens": {"data": {"alice": "dG9rZW4="}}, "cert": {"data": {"tls.crt": "Yw==", "tls.key": "aw=="}}}
    assert secret_problems(SecretsApi(good), parse(SECURED)) == ([], [])
    assert secret_problems(SecretsApi({}), parse(single())) == ([], [])
    forbidden = SecretsApi({**good, "tokens": ApiError(403, "Forbidden", "no")})
    problems, blocking = secret_problems(forbidden, parse(SECURED))
    assert not blocking and [p.reason for p in problems] == [SECRET_UNREADABLE]
    with pytest.raises(ApiError):
        secret_problems(SecretsApi({"tokens": ApiError(500, "x", "y")}), parse(SECURED))


def test_crd_security_schema_agrees_with_the_parser():
    import pathlib

    import yaml
    from mlserving.operator import spec as specmod
    crd = yaml.safe_load((pathlib.Path(__file__).resolve().parents[2] / "crds" /
                          "modeldeployments.mlserving.io.yaml").read_text())
    sec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["security"]
    props = sec["properties"]
    assert sec["default"] == {} and props["networkPolicy"]["default"] is True
    assert props["metricsFrom"]["default"] == list(specmod.DEFAULT_METRICS_FROM)
    assert props["allowedFrom"]["minItems"] == 1
    for peers in ("allowedFrom", "metricsFrom"):
        assert props[peers]["maxItems"] == specmod.MAX_PEERS
        assert tuple(props[peers]["items"]["properties"]) == specmod.PEER_FIELDS
        expr = props[peers]["items"]["properties"]["podSelector"]["properties"]["matchExpressions"]["items"]
        assert tuple(expr["properties"]["operator"]["enum"]) == specmod.SELECTOR_OPERATORS
    rate = props["rateLimit"]["properties"]
    assert tuple(rate["key"]["enum"]) == specmod.RATE_LIMIT_KEYS and rate["key"]["default"] == specmod.DEFAULT_RATE_LIMIT_KEY
    assert (rate["requestsPerSecond"]["minimum"], rate["requestsPerSecond"]["exclusiveMinimum"]) == (0, True)
    assert rate["requestsPerSecond"]["maximum"] == rate["burst"]["maximum"] == specmod.MAX_RATE
    assert props["auth"]["properties"]["secretName"]["pattern"] == specmod.DNS_SUBDOMAIN.pattern
