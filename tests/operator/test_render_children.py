"""Children rendered for a ModelDeployment: names, labels, selectors, owners, order, replicas."""

import json

import pytest
from mlserving.operator import naming
from mlserving.operator.children import child_kinds, desired_children
from render_helpers import SETTINGS, deployments, make_md, render, single

COMMON = {"app.kubernetes.io/name": "mlserving", "app.kubernetes.io/instance": "fraud",
          "app.kubernetes.io/managed-by": "mlserving-operator", "mlserving.io/model-deployment": "fraud"}


def test_ab_renders_every_child_with_expected_names():
    kinds = sorted(render(make_md(autoscaling={"minReplicas": 2, "maxReplicas": 10})))
    assert kinds == sorted([
        ("ServiceAccount", "fraud-router"), ("Role", "fraud-router"), ("RoleBinding", "fraud-router"),
        ("ConfigMap", "fraud-routing"),
        ("Service", "fraud-stable"), ("Service", "fraud-candidate"), ("Service", "fraud"),
        ("Deployment", "fraud-stable"), ("Deployment", "fraud-candidate"), ("Deployment", "fraud-router"),
        ("HorizontalPodAutoscaler", "fraud-stable"), ("HorizontalPodAutoscaler", "fraud-candidate"),
        ("HorizontalPodAutoscaler", "fraud-router"),
        ("PodDisruptionBudget", "fraud-stable"), ("PodDisruptionBudget", "fraud-router"),
        ("NetworkPolicy", "fraud-variants"), ("NetworkPolicy", "fraud-router"),
    ])


def test_single_variant_has_no_router_children():
    names = {name for _, name in render(single())}
    assert names == {"fraud-variants", "fraud-routing", "fraud-stable", "fraud"}


def test_every_child_has_owner_reference_labels_and_namespace():
    for child in desired_children(make_md(autoscaling={"minReplicas": 2, "maxReplicas": 4}), SETTINGS):
        meta = child["metadata"]
        assert meta["namespace"] == "team-a"
        assert meta["ownerReferences"] == [{"apiVersion": "mlserving.io/v1alpha1", "kind": "ModelDeployment",
                                            "name": "fraud", "uid": "0b7c5c3e-uid", "controller": True,
                                            "blockOwnerDeletion": True}]
        assert COMMON.items() <= meta["labels"].items(), child["kind"]
        assert child["apiVersion"] and child["kind"]
        kind = (child["apiVersion"], child["kind"])
        assert kind in {(k.api_version, k.kind) for k in child_kinds()}


def test_variant_children_carry_variant_label_and_selectors_use_instance_and_variant_only():
    children = render(make_md([{"name": "stable", "version": "1.0.0", "weight": 50},
                               {"name": "candidate", "version": "2.0.0", "weight": 50}],
                              autoscaling={"minReplicas": 4, "maxReplicas": 8}))
    for variant in ("stable", "candidate", "router"):
        name = f"fraud-{variant}"
        want_selector = {"app.kubernetes.io/instance": "fraud", "mlserving.io/variant": variant}
        dep = children[("Deployment", name)]
        assert dep["metadata"]["labels"]["mlserving.io/variant"] == variant
        assert dep["spec"]["selector"] == {"matchLabels": want_selector}
        pdb = children[("PodDisruptionBudget", name)]
        assert pdb["spec"]["selector"] == {"matchLabels": want_selector}
        template_labels = dep["spec"]["template"]["metadata"]["labels"]
        assert want_selector.items() <= template_labels.items()
        assert COMMON.items() <= template_labels.items()
        if variant != "router":
            assert children[("Service", name)]["spec"]["selector"] == want_selector
    assert children[("Deployment", "fraud-stable")]["spec"]["template"]["metadata"]["labels"][
        "mlserving.io/model-version"] == "1.0.0"
    assert children[("Deployment", "fraud-candidate")]["spec"]["template"]["metadata"]["labels"][
        "mlserving.io/model-version"] == "2.0.0"


def test_stable_service_selects_router_with_two_variants_and_the_variant_alone():
    ab = render(make_md())[("Service", "fraud")]
    assert ab["spec"]["selector"] == {"app.kubernetes.io/instance": "fraud", "mlserving.io/variant": "router"}
    assert ab["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert "mlserving.io/variant" not in ab["metadata"]["labels"]
    one = render(single())[("Service", "fraud")]
    assert one["spec"]["selector"] == {"app.kubernetes.io/instance": "fraud", "mlserving.io/variant": "stable"}


def test_a_mirror_alone_next_to_one_live_variant_still_gets_a_router():
    md = make_md([{"name": "stable", "version": "1", "weight": 100},
                  {"name": "shadow", "version": "2", "weight": 0, "mirror": True}])
    children = render(md)
    assert ("Deployment", "fraud-router") in children
    assert children[("Service", "fraud")]["spec"]["selector"]["mlserving.io/variant"] == "router"


def test_apply_order_puts_dependencies_first():
    order = [(c["kind"], c["metadata"]["name"]) for c in desired_children(make_md(), SETTINGS)]
    pos = {key: i for i, key in enumerate(order)}
    assert pos[("ConfigMap", "fraud-routing")] < pos[("Deployment", "fraud-router")]
    assert pos[("Role", "fraud-router")] < pos[("Deployment", "fraud-router")]
    assert pos[("ServiceAccount", "fraud-router")] < pos[("Deployment", "fraud-router")]
    assert pos[("Deployment", "fraud-stable")] < pos[("Service", "fraud")]
    assert order[-1] == ("Service", "fraud")


def test_replicas_set_without_autoscaling_and_absent_with_an_hpa():
    plain = deployments(render(make_md([{"name": "stable", "version": "1", "weight": 60, "replicas": 3},
                                        {"name": "candidate", "version": "2", "weight": 40}])))
    assert plain["fraud-stable"]["spec"]["replicas"] == 3
    assert plain["fraud-candidate"]["spec"]["replicas"] == 1  # the default
    assert "replicas" not in plain["fraud-router"]["spec"]  # the router always has an HPA
    scaled = deployments(render(make_md(autoscaling={"minReplicas": 2, "maxReplicas": 10})))
    for name, dep in scaled.items():
        assert "replicas" not in dep["spec"], name


@pytest.mark.parametrize(("min_r", "max_r", "weights", "want"), [
    # min = max(1, ceil(minReplicas*w/100)); max = max(min, ceil(maxReplicas*w/100), min(2, maxReplicas))
    (2, 10, (90, 10), {"stable": (2, 9), "candidate": (1, 2)}),
    (2, 6, (90, 10), {"stable": (2, 6), "candidate": (1, 2)}),  # a small share can still scale
    (2, 10, (50, 50), {"stable": (1, 5), "candidate": (1, 5)}),
    (1, 3, (99, 1), {"stable": (1, 3), "candidate": (1, 2)}),
    (4, 4, (75, 25), {"stable": (3, 3), "candidate": (1, 2)}),
    (3, 7, (100, 0), {"stable": (3, 7), "candidate": (1, 2)}),
    (1, 1, (90, 10), {"stable": (1, 1), "candidate": (1, 1)}),  # never above maxReplicas' own 1
])
def test_hpa_bounds_follow_the_weights(min_r, max_r, weights, want):
    md = make_md([{"name": "stable", "version": "1", "weight": weights[0]},
                  {"name": "candidate", "version": "2", "weight": weights[1]}],
                 autoscaling={"minReplicas": min_r, "maxReplicas": max_r})
    children = render(md)
    for variant, (lo, hi) in want.items():
        hpa = children[("HorizontalPodAutoscaler", f"fraud-{variant}")]["spec"]
        assert (hpa["minReplicas"], hpa["maxReplicas"]) == (lo, hi), variant
        assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"fraud-{variant}"}
        assert hpa["metrics"] == [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]


def test_a_mirror_gets_the_specs_own_hpa_bounds_and_memory_target():
    md = make_md([{"name": "stable", "version": "1", "weight": 100},
                  {"name": "shadow", "version": "2", "weight": 0, "mirror": True}],
                 autoscaling={"minReplicas": 3, "maxReplicas": 9, "targetCPUUtilizationPercentage": 60,
                              "targetMemoryUtilizationPercentage": 80})
    hpa = render(md)[("HorizontalPodAutoscaler", "fraud-shadow")]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 9)
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu", "memory"]
    assert hpa["metrics"][1]["resource"]["target"]["averageUtilization"] == 80


def test_behavior_is_passed_to_every_variant_hpa_and_not_the_routers():
    behavior = {"scaleUp": {"stabilizationWindowSeconds": 0,
                            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
                "scaleDown": {"stabilizationWindowSeconds": 30, "selectPolicy": "Min",
                              "policies": [{"type": "Pods", "value": 1, "periodSeconds": 10}]}}
    md = make_md(autoscaling={"minReplicas": 2, "maxReplicas": 10, "behavior": behavior})
    children = render(md)
    for variant in ("stable", "candidate"):
        assert children[("HorizontalPodAutoscaler", f"fraud-{variant}")]["spec"]["behavior"] == behavior
    assert "behavior" not in children[("HorizontalPodAutoscaler", "fraud-router")]["spec"]
    plain = render(make_md(autoscaling={"minReplicas": 2, "maxReplicas": 10}))
    assert "behavior" not in plain[("HorizontalPodAutoscaler", "fraud-stable")]["spec"]


def test_pdb_only_for_variants_running_two_or_more_pods():
    md = make_md([{"name": "stable", "version": "1", "weight": 90, "replicas": 2},
                  {"name": "candidate", "version": "2", "weight": 10, "replicas": 1}])
    children = render(md)
    assert ("PodDisruptionBudget", "fraud-stable") in children
    assert ("PodDisruptionBudget", "fraud-candidate") not in children
    assert children[("PodDisruptionBudget", "fraud-stable")]["spec"]["maxUnavailable"] == 1


def test_router_rbac_reads_only_its_own_configmap():
    children = render(make_md())
    role = children[("Role", "fraud-router")]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["fraud-routing"],
                              "verbs": ["get", "list", "watch"]}]
    binding = children[("RoleBinding", "fraud-router")]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "fraud-router"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "fraud-router", "namespace": "team-a"}]
    pod = children[("Deployment", "fraud-router")]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "fraud-router"
    assert pod["automountServiceAccountToken"] is True
    assert pod["containers"][0]["args"] == ["router", "--configmap", "team-a/fraud-routing", "--port", "8000",
                                         "--log-level", "info"]


def test_router_hpa_uses_operator_settings():
    from mlserving.operator.settings import OperatorSettings
    settings = OperatorSettings(server_image="x/server:1", router_min_replicas=3, router_max_replicas=6)
    hpa = render(make_md(), settings)[("HorizontalPodAutoscaler", "fraud-router")]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 6)


def test_routing_table_content_and_order():
    md = make_md([{"name": "candidate", "version": "2.0.0", "weight": 10},
                  {"name": "stable", "version": "1.0.0", "weight": 90},
                  {"name": "shadow", "version": "3.0.0", "weight": 0, "mirror": True}],
                 generation=7, routing={"stickyHeader": "X-User-Id"})
    cm = render(md)[("ConfigMap", "fraud-routing")]
    assert list(cm["data"]) == [naming.ROUTING_KEY]
    table = json.loads(cm["data"]["routing.json"])
    assert table == {"generation": 7, "stickyHeader": "x-user-id", "variants": [
        {"name": "candidate", "version": "2.0.0", "url": "http://fraud-candidate.team-a.svc.cluster.local",
         "weight": 10, "mirror": False},
        {"name": "stable", "version": "1.0.0", "url": "http://fraud-stable.team-a.svc.cluster.local",
         "weight": 90, "mirror": False},
        {"name": "shadow", "version": "3.0.0", "url": "http://fraud-shadow.team-a.svc.cluster.local",
         "weight": 0, "mirror": True}]}


def test_routing_table_without_sticky_header_has_null():
    table = json.loads(render(make_md())[("ConfigMap", "fraud-routing")]["data"]["routing.json"])
    assert table["stickyHeader"] is None
    assert table["generation"] == 3


def test_httproute_only_with_gateway_spec_and_crds():
    gateway = {"parentRefs": [{"name": "public", "namespace": "gw"}], "hostnames": ["fraud.example.com"]}
    md = make_md([{"name": "stable", "version": "1", "weight": 90},
                  {"name": "candidate", "version": "2", "weight": 10},
                  {"name": "shadow", "version": "3", "weight": 0, "mirror": True}],
                 routing={"gateway": gateway})
    assert ("HTTPRoute", "fraud") not in render(md)
    route = render(md, SETTINGS.with_gateway(True))[("HTTPRoute", "fraud")]
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == gateway["parentRefs"]
    assert route["spec"]["hostnames"] == ["fraud.example.com"]
    rule = route["spec"]["rules"][0]
    assert [(b["name"], b["port"], b["weight"]) for b in rule["backendRefs"]] == [
        ("fraud-stable", 80, 90), ("fraud-candidate", 80, 10)]
    assert rule["filters"] == [{"type": "RequestMirror", "requestMirror": {"backendRef": {
        "group": "", "kind": "Service", "name": "fraud-shadow", "port": 80}}}]
    assert ("HTTPRoute", "fraud") not in render(make_md(), SETTINGS.with_gateway(True))


def test_children_selector_matches_every_child_label_set():
    selector = dict(part.split("=") for part in naming.children_selector("fraud").split(","))
    for child in desired_children(make_md(), SETTINGS):
        assert selector.items() <= child["metadata"]["labels"].items()


def test_the_routers_own_parser_accepts_the_rendered_table():
    from mlserving.server.router.table import parse_table

    md = make_md([{"name": "stable", "version": "1.0.0", "weight": 90},
                  {"name": "candidate", "version": "2.0.0", "weight": 10},
                  {"name": "shadow", "version": "3.0.0", "weight": 0, "mirror": True}],
                 routing={"stickyHeader": "x-user-id"})
    table = parse_table(render(md)[("ConfigMap", "fraud-routing")]["data"]["routing.json"])
    assert table.generation == 3 and table.sticky_header == "x-user-id"
    assert [(v.name, v.weight, v.mirror) for v in table.variants] == [
        ("stable", 90, False), ("candidate", 10, False), ("shadow", 0, True)]
    assert table.variants[0].url == "http://fraud-stable.team-a.svc.cluster.local"
