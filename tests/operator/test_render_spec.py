"""Spec parsing: defaults and the errors the operator reports (naming the field)."""

import pytest
from mlserving.operator.settings import OperatorSettings
from mlserving.operator.spec import DEFAULT_RESOURCES, SpecError, parse
from render_helpers import make_md, single


def test_defaults():
    spec = parse(single())
    (v,) = spec.variants
    assert v.storage.kind == "image" and v.storage.path == "/models/fraud/1.0.0"
    assert v.replicas == 1 and v.mirror is False
    assert spec.resources == DEFAULT_RESOURCES
    assert spec.autoscaling is None and spec.sticky_header is None and spec.gateway is None
    assert spec.image is None and not spec.has_router
    assert spec.spread == "soft"
    scaled = parse(single(autoscaling={"maxReplicas": 4}))
    assert (scaled.autoscaling.min_replicas, scaled.autoscaling.target_cpu) == (1, 70)


def variants(*triples):
    return [{"name": n, "version": "1", "weight": w, **({"mirror": True} if m else {})} for n, w, m in triples]


@pytest.mark.parametrize(("md", "field", "fragment"), [
    (make_md(variants(("a", 60, False), ("b", 30, False))), "spec.variants", "sum to exactly 100"),
    (make_md(variants(("a", 100, False), ("m", 5, True))), "spec.variants[m].weight", "mirror"),
    (make_md(variants(("a", 50, False), ("router", 50, False))), "spec.variants[router].name", "reserved"),
    (make_md(variants(("a", 50, False), ("a", 50, False))), "spec.variants[a].name", "unique"),
    (make_md(variants(("Bad", 100, False))), "spec.variants[Bad].name", "DNS-1035"),
    (make_md(variants(("a", 100, False)), name="x" * 57), "metadata.name", "63"),
    (make_md(variants(("v" * 20, 100, False)), name="m" * 50), f"spec.variants[{'v' * 20}].name", "63"),
    (make_md(variants(("a", 100, False)), name="1abc"), "metadata.name", "DNS-1035"),
    (make_md(variants(("a", 101, False))), "spec.variants[a].weight", "0 to 100"),
    (make_md([{"name": "a", "version": "1.0/0", "weight": 100}]), "spec.variants[a].version", "label value"),
    (make_md([{"name": "a", "weight": 100}]), "spec.variants[a].version", "required"),
    (make_md([]), "spec.variants", "1 to 8"),
    (make_md(variants(*[(f"v{i}", 0 if i else 100, False) for i in range(9)])), "spec.variants", "1 to 8"),
    (single(autoscaling={"minReplicas": 5, "maxReplicas": 2}), "spec.autoscaling.maxReplicas", "minReplicas"),
    (single(autoscaling={"minReplicas": 1}), "spec.autoscaling.maxReplicas", "required"),
    (single(routing={"stickyHeader": "x user"}), "spec.routing.stickyHeader", "header"),
    (single(autoscaling={"maxReplicas": 4, "behavior": {"scaleDown": {"stabilizationWindowSeconds": -1}}}),
     "spec.autoscaling.behavior.scaleDown.stabilizationWindowSeconds", "0 to 3600"),
    (single(autoscaling={"maxReplicas": 4, "behavior": {"scaleUp": {
        "policies": [{"type": "Nodes", "value": 1, "periodSeconds": 15}]}}}),
     "spec.autoscaling.behavior.scaleUp.policies[0].type", "Pods, Percent"),
    (single(autoscaling={"maxReplicas": 4, "behavior": {"scaleUp": {
        "policies": [{"type": "Pods", "value": 0, "periodSeconds": 15}]}}}),
     "spec.autoscaling.behavior.scaleUp.policies[0].value", "1 to"),
    (single(autoscaling={"maxReplicas": 4, "behavior": {"scaleDown": {
        "policies": [{"type": "Pods", "value": 1}]}}}),
     "spec.autoscaling.behavior.scaleDown.policies[0].periodSeconds", "1 to 1800"),
    (single(autoscaling={"maxReplicas": 4, "behavior": {"scaleDown": {"selectPolicy": "Often"}}}),
     "spec.autoscaling.behavior.scaleDown.selectPolicy", "Max, Min, Disabled"),
    (single(autoscaling={"maxReplicas": 4, "behavior": {"sideways": {}}}),
     "spec.autoscaling.behavior.sideways", "scaleUp and scaleDown"),
    (single(routing={"gateway": {"parentRefs": []}}), "spec.routing.gateway.parentRefs", "at least one"),
    (single(image="docker.io/mlserving/server:latest"), "spec.image", "latest"),
    (single(image="docker.io/mlserving/server"), "spec.image", "tagged"),
    (single(resources={"requests": {"cpu": "1"}, "claims": []}), "spec.resources.claims", "requests and limits"),
])
def test_spec_errors_name_the_field(md, field, fragment):
    with pytest.raises(SpecError) as err:
        parse(md)
    assert err.value.field == field
    assert fragment in err.value.message
    assert str(err.value).startswith(field + ": ")


def test_model_must_be_a_dns_label():
    md = single()
    md["spec"]["model"] = "Fraud_Model"
    with pytest.raises(SpecError, match=r"^spec.model: "):
        parse(md)


def test_settings_from_env_defaults_and_errors():
    s = OperatorSettings.from_env({})
    assert s.server_image.startswith("docker.io/mlserving/server:") and not s.server_image.endswith(":latest")
    assert (s.image_pull_policy, s.log_level, s.router_min_replicas, s.router_max_replicas) == ("IfNotPresent", "INFO", 2, 10)
    assert s.include_gateway is False and s.with_gateway(True).include_gateway is True
    for env, name in [({"MLSERVING_SERVER_IMAGE": "x/y:latest"}, "MLSERVING_SERVER_IMAGE"),
                      ({"MLSERVING_SERVER_IMAGE": "x/y"}, "MLSERVING_SERVER_IMAGE"),
                      ({"MLSERVING_IMAGE_PULL_POLICY": "Sometimes"}, "MLSERVING_IMAGE_PULL_POLICY"),
                      ({"MLSERVING_ROUTER_MIN_REPLICAS": "two"}, "MLSERVING_ROUTER_MIN_REPLICAS"),
                      ({"MLSERVING_ROUTER_MIN_REPLICAS": "5", "MLSERVING_ROUTER_MAX_REPLICAS": "3"},
                       "MLSERVING_ROUTER_MIN_REPLICAS")]:
        with pytest.raises(ValueError, match=name):
            OperatorSettings.from_env(env)
    assert OperatorSettings.from_env({"MLSERVING_SERVER_IMAGE": "localhost:5000/s@sha256:" + "a" * 64}).server_image
