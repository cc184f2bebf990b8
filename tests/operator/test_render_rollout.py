"""Rendering during a rollout: the old version's children untouched, the track beside them, the
routing table split by tracks, and the router a single-variant ModelDeployment has all along
while spec.rollout is set."""

import json
from datetime import datetime

from mlserving.operator import naming
from mlserving.operator.children import desired_children
from mlserving.operator.rollout import machine
from mlserving.operator.rollout.plan import plan
from mlserving.operator.rollout.served import SERVED_ANNOTATION, read_served
from mlserving.operator.spec import parse
from render_helpers import SETTINGS, single

T0 = datetime(2026, 1, 1, 12, 0, 0)
OLD = {"version": "1.0.0", "storageUri": "file:///models/fraud/1.0.0", "replicas": 1, "resources": None}
READY = machine.Observed(track_ready=True, routers_ready=True)


def rolling_md(version="2.0.0"):
    md = single(rollout={"steps": [20, 50], "intervalSeconds": 30})
    md["spec"]["variants"][0]["version"] = version
    return md


def by_key(md, state, router_available=True):
    spec = parse(md)
    p = plan(spec, state, {"stable": OLD}, router_available)
    return {(c["kind"], c["metadata"]["name"]): c for c in desired_children(md, SETTINGS, p)}


def state_at(stage_steps: int):
    md = rolling_md()
    spec = parse(md)
    t = machine.step(spec, None, {"stable": OLD}, machine.Observed(), T0, lambda s: None)
    for _ in range(stage_steps):
        t = machine.step(spec, t.state, {"stable": OLD}, READY, T0, lambda s: None)
    return t.state


def table(children) -> dict:
    return json.loads(children[("ConfigMap", "fraud-routing")]["data"]["routing.json"])


def test_every_variant_deployment_remembers_what_it_serves():
    children = {(c["kind"], c["metadata"]["name"]): c for c in desired_children(single(), SETTINGS)}
    dep = children[("Deployment", "fraud-stable")]
    assert read_served(dep) == OLD
    assert SERVED_ANNOTATION not in dep["spec"]["template"]["metadata"].get("annotations", {})


def test_starting_rollout_keeps_the_old_version_and_adds_a_track_that_no_old_selector_takes():
    state = state_at(0)
    children = by_key(rolling_md(), state, router_available=False)
    track = state["track"]
    old, new = children[("Deployment", "fraud-stable")], children[("Deployment", track)]
    assert old["spec"]["template"]["metadata"]["labels"][naming.LABEL_MODEL_VERSION] == "1.0.0"
    assert old["spec"]["selector"]["matchLabels"] == {naming.LABEL_INSTANCE: "fraud", naming.LABEL_VARIANT: "stable"}
    pod = new["spec"]["template"]["metadata"]["labels"]
    assert pod[naming.LABEL_MODEL_VERSION] == "2.0.0" and naming.LABEL_VARIANT not in pod
    assert pod[naming.LABEL_TRACK] == track.removeprefix("fraud-") and pod[naming.LABEL_ROLLOUT_OF] == "stable"
    for selector in (old["spec"]["selector"]["matchLabels"], children[("Service", "fraud-stable")]["spec"]["selector"]):
        assert not all(pod.get(k) == v for k, v in selector.items()), "an old selector takes the new pods"
    new_selector = new["spec"]["selector"]["matchLabels"]
    assert children[("Service", track)]["spec"]["selector"] == new_selector
    assert all(pod[k] == v for k, v in new_selector.items())
    assert "/models/fraud/2.0.0" in json.dumps(new["spec"]["template"])
    # Single variant: the router exists, the stable Service waits for one of its pods to be available.
    assert ("Deployment", "fraud-router") in children
    assert children[("Service", "fraud")]["spec"]["selector"][naming.LABEL_VARIANT] == "stable"
    assert "tracks" not in json.dumps(table(children)) and "format" not in table(children)


def test_a_step_splits_the_variant_in_the_table_in_track_order():
    state = state_at(1)
    assert state["weight"] == 20
    children = by_key(rolling_md(), state)
    t = table(children)
    assert t["format"] == 2
    entry = t["variants"][0]
    assert (entry["version"], entry["weight"]) == ("1.0.0", 100)
    assert [(tr["version"], tr["weight"]) for tr in entry["tracks"]] == [("1.0.0", 80), ("2.0.0", 20)]
    assert entry["tracks"][1]["url"] == f"http://{state['track']}.team-a.svc.cluster.local"
    assert children[("Service", "fraud")]["spec"]["selector"][naming.LABEL_VARIANT] == naming.ROUTER
    from mlserving.server.router.table import parse_table
    parse_table(json.dumps(t))  # the router accepts what the operator writes


def test_a_single_variant_with_spec_rollout_has_the_router_before_any_rollout_starts():
    md = single(rollout={"steps": [20, 50]})
    children = by_key(md, None)
    assert ("Deployment", "fraud-router") in children and ("HorizontalPodAutoscaler", "fraud-router") in children
    assert children[("Service", "fraud")]["spec"]["selector"][naming.LABEL_VARIANT] == naming.ROUTER
    assert [(v["name"], v["weight"]) for v in table(children)["variants"]] == [("stable", 100)]
    # Until a router pod is available the Service keeps pointing at the variant (adding
    # spec.rollout to a serving ModelDeployment never empties its Service).
    waiting = by_key(md, None, router_available=False)
    assert waiting[("Service", "fraud")]["spec"]["selector"][naming.LABEL_VARIANT] == "stable"
    assert ("Deployment", "fraud-router") in waiting
    # Without spec.rollout a single variant has no router.
    plain = {(c["kind"], c["metadata"]["name"]) for c in desired_children(single(), SETTINGS)}
    assert ("Deployment", "fraud-router") not in plain


def test_promoting_rolls_the_variant_to_the_new_version_and_done_removes_the_track_only():
    state = machine.step(parse(rolling_md()), state_at(1), {"stable": OLD}, READY, T0, lambda s: None,
                         "promote").state
    children = by_key(rolling_md(), state)
    old = children[("Deployment", "fraud-stable")]
    assert old["spec"]["template"]["metadata"]["labels"][naming.LABEL_MODEL_VERSION] == "2.0.0"
    assert [tr["weight"] for tr in table(children)["variants"][0]["tracks"]] == [0, 100]
    done = dict(state, phase=machine.PROMOTED, stage=machine.DONE)
    children = by_key(rolling_md(), done)
    assert [k for k in children if k[1] == state["track"]] == []
    assert ("Deployment", "fraud-router") in children  # ready for the next rollout
    assert children[("Service", "fraud")]["spec"]["selector"][naming.LABEL_VARIANT] == naming.ROUTER


def test_rolled_back_keeps_serving_the_old_version_while_the_spec_says_the_new_one():
    state = machine.step(parse(rolling_md()), state_at(1), {"stable": OLD}, READY, T0, lambda s: None, "abort").state
    children = by_key(rolling_md(), state)
    assert state["phase"] == machine.ROLLED_BACK
    dep = children[("Deployment", "fraud-stable")]
    assert dep["spec"]["template"]["metadata"]["labels"][naming.LABEL_MODEL_VERSION] == "1.0.0"
    assert [k for k in children if k[1] == state["track"]] == []
    assert table(children)["variants"][0]["version"] == "1.0.0"


def test_inside_an_ab_split_the_steps_split_only_that_variants_share_and_others_wait_their_turn():
    from render_helpers import make_md

    md = make_md(rollout={"steps": [20, 50]})  # stable 1.0.0 at 90, candidate 2.0.0 at 10
    md["spec"]["variants"][0]["version"] = "1.5.0"
    md["spec"]["variants"][1]["version"] = "2.5.0"
    served = {"stable": OLD, "candidate": {**OLD, "version": "2.0.0", "storageUri": "file:///models/fraud/2.0.0"}}
    spec = parse(md)
    t = machine.step(spec, None, served, machine.Observed(), T0, lambda s: None)
    assert t.state["variant"] == "stable" and t.state["toVersion"] == "1.5.0"  # spec order, one at a time
    t = machine.step(spec, t.state, served, READY, T0, lambda s: None)
    children = {(c["kind"], c["metadata"]["name"]): c
                for c in desired_children(md, SETTINGS, plan(spec, t.state, served, True))}
    variants = table(children)["variants"]
    assert [(v["name"], v["weight"]) for v in variants] == [("stable", 90), ("candidate", 10)]
    assert [(tr["version"], tr["weight"]) for tr in variants[0]["tracks"]] == [("1.0.0", 80), ("1.5.0", 20)]
    assert "tracks" not in variants[1] and variants[1]["version"] == "2.0.0"  # waits, still serving 2.0.0
    cand = children[("Deployment", "fraud-candidate")]
    assert cand["spec"]["template"]["metadata"]["labels"][naming.LABEL_MODEL_VERSION] == "2.0.0"


def test_a_mirror_variant_rolls_as_without_rollouts():
    from render_helpers import make_md

    md = make_md([{"name": "stable", "version": "1.0.0", "weight": 100},
                  {"name": "shadow", "version": "3.1.0", "weight": 0, "mirror": True}], rollout={})
    served = {"stable": OLD, "shadow": {**OLD, "version": "3.0.0", "storageUri": "file:///models/fraud/3.0.0"}}
    spec = parse(md)
    assert machine.step(spec, None, served, READY, T0, lambda s: None).state is None
    children = {(c["kind"], c["metadata"]["name"]): c
                for c in desired_children(md, SETTINGS, plan(spec, None, served, True))}
    dep = children[("Deployment", "fraud-shadow")]
    assert dep["spec"]["template"]["metadata"]["labels"][naming.LABEL_MODEL_VERSION] == "3.1.0"


def selects(selector: dict, labels: dict) -> bool:
    """Kubernetes label-selector semantics (NotIn and DoesNotExist match a missing key)."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    ops = {"In": lambda k, vs: labels.get(k) in vs, "NotIn": lambda k, vs: labels.get(k) not in vs,
           "Exists": lambda k, _: k in labels, "DoesNotExist": lambda k, _: k not in labels}
    return all(ops[e["operator"]](e["key"], e.get("values", [])) for e in selector.get("matchExpressions", []))


def test_a_tracks_pods_are_shut_off_by_the_variants_network_policy_like_the_variant():
    state = state_at(1)
    children = by_key(rolling_md(), state)
    variants = children[("NetworkPolicy", naming.variants_network_policy("fraud"))]["spec"]["podSelector"]
    router = children[("NetworkPolicy", "fraud-router")]["spec"]["podSelector"]
    for name, taken_by_variants in ((state["track"], True), ("fraud-stable", True), ("fraud-router", False)):
        pod = children[("Deployment", name)]["spec"]["template"]["metadata"]["labels"]
        assert selects(variants, pod) == taken_by_variants, name
        assert selects(router, pod) != taken_by_variants, name
    # The router selects the stable Service: only it may call the variant pods.
    serving = next(r for r in children[("NetworkPolicy", "fraud-variants")]["spec"]["ingress"]
                   if r["ports"][0]["port"] == naming.HTTP_PORT)
    assert serving["from"] == [{"podSelector": {"matchLabels": naming.selector_labels("fraud", naming.ROUTER)}}]


def test_before_a_router_pod_is_available_the_variant_stays_open_as_its_service_points_at_it():
    children = by_key(rolling_md(), state_at(0), router_available=False)
    assert children[("Service", "fraud")]["spec"]["selector"][naming.LABEL_VARIANT] == "stable"
    serving = next(r for r in children[("NetworkPolicy", "fraud-variants")]["spec"]["ingress"]
                   if r["ports"][0]["port"] == naming.HTTP_PORT)
    assert "from" not in serving
    assert ("NetworkPolicy", "fraud-router") in children
