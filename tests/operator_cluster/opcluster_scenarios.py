"""The operator acceptance scenarios (issue 4, tests 3 to 8), each a function of (cluster, api, ns).

They are run one per test against the shared operator, and all in sequence against an operator
that holds only the ServiceAccount's permissions (test 10).
"""

from __future__ import annotations

import json
import math
import time

from mlserving.operator import conditions
from opcluster_kit import (
    COMMON_LABELS,
    DEPLOYMENT,
    HPA,
    MD,
    REPO,
    SERVICE,
    children_match,
    create_md,
    live_children,
    load_example,
    md_status,
    patch_md,
    replicasets_of,
    routing_table,
    wait_for,
)

AB_EXAMPLE = "fraud-ab.yaml"
NAME = "fraud"  # metadata.name in examples/fraud-ab.yaml
SELF_HEAL_SECONDS = 10.0


def apply_ab_example(cluster, api, ns: str) -> dict:
    """``kubectl apply -f examples/fraud-ab.yaml`` and wait until every child exists."""
    assert load_example(AB_EXAMPLE)["metadata"]["name"] == NAME
    cluster.kubectl("apply", "-n", ns, "-f", str(REPO / "examples" / AB_EXAMPLE))
    wait_for("every child of the A/B example", lambda: children_match(api, ns, NAME) is True, 60)
    return api.get(MD, ns, NAME)


def _printed_row(text: str) -> dict[str, str]:
    """`kubectl get` table output → {column: value}, cut at the header's column offsets."""
    header, row = text.splitlines()[0], text.splitlines()[1]
    columns = header.split()
    starts = [header.index(c) for c in columns]
    ends = starts[1:] + [None]
    return {c: row[s:e].strip() for c, s, e in zip(columns, starts, ends, strict=True)}


def _deployments(api, ns: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in api.list(DEPLOYMENT, ns, f"app.kubernetes.io/instance={NAME}")}


def _templates_and_replicasets(api, ns: str) -> dict[str, tuple[str, int]]:
    return {name: (json.dumps(d["spec"]["template"], sort_keys=True), len(replicasets_of(api, ns, d)))
            for name, d in _deployments(api, ns).items()}


def _wait_replicasets(api, ns: str) -> None:
    wait_for("one ReplicaSet per Deployment",
             lambda: all(len(replicasets_of(api, ns, d)) == 1 for d in _deployments(api, ns).values()), 60)


def _hpa_bounds(api, ns: str) -> dict[str, tuple[int, int]]:
    return {h["metadata"]["name"]: (h["spec"].get("minReplicas", 1), h["spec"]["maxReplicas"])
            for h in api.list(HPA, ns, f"app.kubernetes.io/instance={NAME}")}


def expected_bounds(min_replicas: int, max_replicas: int, weight: int) -> tuple[int, int]:
    """docs/api.md's rule for a live variant of weight w (a small variant can still scale to 2)."""
    low = max(1, math.ceil(min_replicas * weight / 100))
    return low, max(low, math.ceil(max_replicas * weight / 100), min(2, max_replicas))


# -- 3 ------------------------------------------------------------------------------------------
def scenario_children_status_columns(cluster, api, ns: str) -> None:
    md = apply_ab_example(cluster, api, ns)
    uid = md["metadata"]["uid"]
    children = live_children(api, ns, NAME)
    for key in [("Deployment", "fraud-stable"), ("Deployment", "fraud-candidate"), ("Deployment", "fraud-router"),
                ("Service", "fraud"), ("Service", "fraud-stable"), ("Service", "fraud-candidate"),
                ("ConfigMap", "fraud-routing"), ("ServiceAccount", "fraud-router"), ("Role", "fraud-router"),
                ("RoleBinding", "fraud-router"), ("HorizontalPodAutoscaler", "fraud-stable"),
                ("HorizontalPodAutoscaler", "fraud-candidate")]:
        assert key in children, f"{key} missing; children: {sorted(children)}"
    for (kind, name), obj in children.items():
        labels = obj["metadata"].get("labels") or {}
        for label in COMMON_LABELS:
            assert label in labels, f"{kind} {name} lacks label {label}: {labels}"
        assert labels["app.kubernetes.io/instance"] == NAME
        assert labels["app.kubernetes.io/managed-by"] == "mlserving-operator"
        controllers = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")]
        assert len(controllers) == 1 and controllers[0]["uid"] == uid, f"{kind} {name}: {controllers}"
        assert controllers[0]["kind"] == "ModelDeployment" and controllers[0]["name"] == NAME
        if kind == "Deployment" and name != "fraud-router":
            variant = name.removeprefix("fraud-")
            pod_labels = obj["spec"]["template"]["metadata"]["labels"]
            assert pod_labels["mlserving.io/variant"] == variant
            assert pod_labels["mlserving.io/model-version"] == {"stable": "1.0.0", "candidate": "2.0.0"}[variant]
            assert obj["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/instance": NAME,
                                                              "mlserving.io/variant": variant}

    cluster.kubectl("wait", "--for=condition=Ready", f"md/{NAME}", "-n", ns, "--timeout=120s", timeout=150)
    status = md_status(api, ns, NAME)
    assert status["phase"] == "Ready", status
    assert status["traffic"] == "stable=1.0.0:90% candidate=2.0.0:10%"
    assert status["url"] == f"http://fraud.{ns}.svc.cluster.local"
    assert status["observedGeneration"] == md["metadata"]["generation"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["reason"] and ready["lastTransitionTime"]
    for variant in status["variants"]:
        assert variant["readyReplicas"] >= 1, status["variants"]

    table = cluster.kubectl("get", "modeldeployments", "-n", ns).stdout
    assert table.splitlines()[0].split() == ["NAME", "READY", "PHASE", "TRAFFIC", "ROLLOUT", "URL", "AGE"], table
    row = _printed_row(table)
    assert row["NAME"] == NAME and row["READY"] == "True" and row["PHASE"] == "Ready", table
    assert row["TRAFFIC"] == "stable=1.0.0:90% candidate=2.0.0:10%", table
    assert row["URL"] == f"http://fraud.{ns}.svc.cluster.local", table


# -- 4 ------------------------------------------------------------------------------------------
def scenario_weights_only_touch_routing(cluster, api, ns: str) -> None:
    apply_ab_example(cluster, api, ns)
    _wait_replicasets(api, ns)
    before = _templates_and_replicasets(api, ns)
    scaling = load_example(AB_EXAMPLE)["spec"]["autoscaling"]
    lo, hi = scaling["minReplicas"], scaling["maxReplicas"]
    assert _hpa_bounds(api, ns)["fraud-candidate"] == expected_bounds(lo, hi, 10)

    def fifty_fifty(spec):
        for variant in spec["variants"]:
            variant["weight"] = 50
    generation = patch_md(api, ns, NAME, fifty_fifty)["metadata"]["generation"]

    def table_updated():
        table = routing_table(api, ns, NAME)
        return table.get("generation") == generation and [v["weight"] for v in table["variants"]] == [50, 50]
    wait_for("routing table 50/50", table_updated, 15)
    want = {"fraud-stable": expected_bounds(lo, hi, 50), "fraud-candidate": expected_bounds(lo, hi, 50)}
    wait_for(f"HPA bounds {want}", lambda: {k: v for k, v in _hpa_bounds(api, ns).items() if k in want} == want, 15)
    wait_for("status traffic 50/50",
             lambda: md_status(api, ns, NAME).get("traffic") == "stable=1.0.0:50% candidate=2.0.0:50%", 15)
    time.sleep(2)  # a wrong rollout would show up as a new template / ReplicaSet by now
    assert _templates_and_replicasets(api, ns) == before


# -- 5 ------------------------------------------------------------------------------------------
def scenario_version_change_rolls_one_deployment(cluster, api, ns: str) -> None:
    apply_ab_example(cluster, api, ns)
    _wait_replicasets(api, ns)
    before = _templates_and_replicasets(api, ns)

    def bump(spec):
        [candidate] = [v for v in spec["variants"] if v["name"] == "candidate"]
        candidate["version"] = "2.1.0"
    patch_md(api, ns, NAME, bump)

    def candidate_rolled():
        dep = _deployments(api, ns)["fraud-candidate"]
        version = dep["spec"]["template"]["metadata"]["labels"].get("mlserving.io/model-version")
        return version == "2.1.0" and len(replicasets_of(api, ns, dep)) == 2
    wait_for("a second ReplicaSet for fraud-candidate with version 2.1.0", candidate_rolled, 30)
    assert [v["version"] for v in routing_table(api, ns, NAME)["variants"]] == ["1.0.0", "2.1.0"]
    time.sleep(2)
    after = _templates_and_replicasets(api, ns)
    for name in ("fraud-stable", "fraud-router"):
        assert after[name] == before[name], f"{name} changed although only the candidate's version did"


# -- 6 ------------------------------------------------------------------------------------------
def scenario_hand_changes_are_reverted(cluster, api, ns: str) -> None:
    apply_ab_example(cluster, api, ns)
    old_uid = api.get(DEPLOYMENT, ns, "fraud-candidate")["metadata"]["uid"]
    cluster.kubectl("delete", "deployment", "fraud-candidate", "-n", ns, "--wait=false")
    started = time.monotonic()

    def recreated():
        dep = api.get(DEPLOYMENT, ns, "fraud-candidate")
        return dep is not None and dep["metadata"]["uid"] != old_uid
    wait_for("fraud-candidate to be recreated", recreated, SELF_HEAL_SECONDS, interval=0.2)
    print(f"deleted Deployment back after {time.monotonic() - started:.1f}s")

    selector = api.get(SERVICE, ns, "fraud-stable")["spec"]["selector"]
    cluster.kubectl("patch", "service", "fraud-stable", "-n", ns, "-p",
                    json.dumps({"spec": {"selector": {"mlserving.io/variant": "candidate"}}}))
    assert api.get(SERVICE, ns, "fraud-stable")["spec"]["selector"]["mlserving.io/variant"] == "candidate"
    started = time.monotonic()
    wait_for("fraud-stable's selector to be restored",
             lambda: api.get(SERVICE, ns, "fraud-stable")["spec"]["selector"] == selector,
             SELF_HEAL_SECONDS, interval=0.2)
    print(f"edited Service restored after {time.monotonic() - started:.1f}s")


# -- 7 ------------------------------------------------------------------------------------------
def scenario_removing_a_variant_prunes_it(cluster, api, ns: str) -> None:
    apply_ab_example(cluster, api, ns)

    def only_stable(spec):
        spec["variants"] = [dict(v, weight=100) for v in spec["variants"] if v["name"] == "stable"]
    patch_md(api, ns, NAME, only_stable)
    wait_for("children of a single-variant ModelDeployment", lambda: children_match(api, ns, NAME) is True, 30)
    names = {f"{kind}/{name}" for kind, name in live_children(api, ns, NAME)}
    assert not {n for n in names if n.endswith(("fraud-candidate", "fraud-router"))}, names
    selector = api.get(SERVICE, ns, NAME)["spec"]["selector"]
    assert selector == {"app.kubernetes.io/instance": NAME, "mlserving.io/variant": "stable"}, selector


# -- 8 ------------------------------------------------------------------------------------------
def scenario_deleting_collects_everything(cluster, api, ns: str) -> None:
    apply_ab_example(cluster, api, ns)
    cluster.kubectl("delete", "modeldeployment", NAME, "-n", ns, "--wait=false")
    wait_for("every child to be garbage-collected", lambda: not live_children(api, ns, NAME), 90, interval=1)
    assert api.get(MD, ns, NAME) is None


# -- spec.security -------------------------------------------------------------------------------
def scenario_missing_secret_is_named_until_it_exists(cluster, api, ns: str) -> None:
    """A single variant with auth gets a router and NetworkPolicies; its missing token Secret is
    named in the status (not Ready) until the Secret is created, without any change to the spec."""
    md = load_example("fraud-single.yaml")
    name = md["metadata"]["name"]
    md["spec"]["security"] = {"auth": {"secretName": f"{name}-tokens"}}
    create_md(api, ns, md)
    wait_for("children of a secured single variant", lambda: children_match(api, ns, name) is True, 60)
    kinds = {kind for kind, _ in live_children(api, ns, name)}
    assert {"NetworkPolicy", "Role"} <= kinds, kinds

    def condition(kind: str) -> dict:
        return next((c for c in md_status(api, ns, name).get("conditions") or [] if c["type"] == kind), {})
    wait_for("SecretsFound=False", lambda: condition(conditions.SECRETS_FOUND).get("reason") == conditions.SECRET_NOT_FOUND, 60)
    assert f"Secret {ns}/{name}-tokens not found" in condition(conditions.SECRETS_FOUND)["message"]
    assert condition(conditions.READY)["status"] == "False"
    cluster.kubectl("create", "secret", "generic", f"{name}-tokens", "-n", ns, "--from-literal=alice=s3cr3t")
    wait_for("the SecretsFound condition to clear", lambda: not condition(conditions.SECRETS_FOUND), 120, interval=1)


ALL = [scenario_children_status_columns, scenario_weights_only_touch_routing,
       scenario_version_change_rolls_one_deployment, scenario_hand_changes_are_reverted,
       scenario_removing_a_variant_prunes_it, scenario_deleting_collects_everything,
       scenario_missing_secret_is_named_until_it_exists]
