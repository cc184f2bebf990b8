"""Topology spread constraints on every server and router Deployment (spec.placement.spread)."""

import pathlib

import pytest
import yaml
from mlserving.operator.spec import SPREAD_MODES, SpecError, parse
from render_helpers import deployments, make_md, render, single

ROOT = pathlib.Path(__file__).resolve().parents[2]
HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
AB_WITH_MIRROR = [{"name": "stable", "version": "1", "weight": 90},
                  {"name": "candidate", "version": "2", "weight": 10},
                  {"name": "shadow", "version": "3", "weight": 0, "mirror": True}]


def constraints(md) -> dict[str, list[dict]]:
    """Deployment name -> its pod template's topologySpreadConstraints ([] when none)."""
    return {name: d["spec"]["template"]["spec"].get("topologySpreadConstraints", [])
            for name, d in deployments(render(md)).items()}


def by_key(tsc: list[dict]) -> dict[str, dict]:
    keyed = {c["topologyKey"]: c for c in tsc}
    assert len(keyed) == len(tsc), f"one constraint per topology key: {tsc}"
    return keyed


@pytest.mark.parametrize("spread", [None, "soft"])
def test_soft_by_default_on_every_server_and_router_deployment(spread):
    md = make_md(AB_WITH_MIRROR, **({"placement": {"spread": spread}} if spread else {}))
    rendered = deployments(render(md))
    assert sorted(rendered) == ["fraud-candidate", "fraud-router", "fraud-shadow", "fraud-stable"]
    for name, dep in rendered.items():
        tsc = by_key(dep["spec"]["template"]["spec"]["topologySpreadConstraints"])
        assert sorted(tsc) == [HOSTNAME, ZONE], name
        for key, c in tsc.items():
            assert c["whenUnsatisfiable"] == "ScheduleAnyway", (name, key)
            assert c["maxSkew"] == 1
            # The Deployment's own pods, and among them those of one ReplicaSet (a rollout's new
            # pods are spread on their own, not around the old ones that are leaving).
            assert c["labelSelector"] == {"matchLabels": dep["spec"]["selector"]["matchLabels"]}
            assert c["matchLabelKeys"] == ["pod-template-hash"]
            assert (c["nodeAffinityPolicy"], c["nodeTaintsPolicy"]) == ("Honor", "Honor")


def test_the_selector_picks_that_deployments_pods_and_no_others():
    rendered = deployments(render(make_md(AB_WITH_MIRROR)))
    for name, dep in rendered.items():
        own = dep["spec"]["template"]["metadata"]["labels"]
        for c in dep["spec"]["template"]["spec"]["topologySpreadConstraints"]:
            wanted = c["labelSelector"]["matchLabels"]
            assert wanted.items() <= own.items(), name
            for other_name, other in rendered.items():
                if other_name != name:
                    assert not wanted.items() <= other["spec"]["template"]["metadata"]["labels"].items()


def test_hard_refuses_a_second_pod_per_node_beyond_skew_one_but_keeps_zones_soft():
    for name, tsc in constraints(make_md(placement={"spread": "hard"})).items():
        keyed = by_key(tsc)
        assert keyed[HOSTNAME]["whenUnsatisfiable"] == "DoNotSchedule", name
        assert keyed[HOSTNAME]["maxSkew"] == 1
        assert keyed[ZONE]["whenUnsatisfiable"] == "ScheduleAnyway", name


def test_none_renders_no_constraints():
    for name, dep in deployments(render(make_md(placement={"spread": "none"}))).items():
        assert "topologySpreadConstraints" not in dep["spec"]["template"]["spec"], name


def test_pod_overrides_affinity_passes_through_unchanged_next_to_the_spread():
    affinity = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["inference"]}]}]}},
        "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": HOSTNAME, "labelSelector": {"matchLabels": {"app": "batch-jobs"}}}]},
    }
    for spread in SPREAD_MODES:
        md = make_md(podOverrides={"affinity": affinity}, placement={"spread": spread})
        for name, dep in deployments(render(md)).items():
            pod = dep["spec"]["template"]["spec"]
            assert pod["affinity"] == affinity, (spread, name)  # never merged with anything of ours
            assert bool(pod.get("topologySpreadConstraints")) == (spread != "none")


def test_spread_changes_only_the_constraints_of_the_pod_template():
    soft, hard = (deployments(render(single(placement={"spread": s}))) for s in ("soft", "hard"))
    for name in soft:
        a, b = soft[name]["spec"]["template"]["spec"], hard[name]["spec"]["template"]["spec"]
        assert {k: v for k, v in a.items() if k != "topologySpreadConstraints"} == \
               {k: v for k, v in b.items() if k != "topologySpreadConstraints"}


def test_weight_change_leaves_the_constraints_alone():
    before = constraints(make_md())
    md = make_md([{"name": "stable", "version": "1.0.0", "weight": 50},
                  {"name": "candidate", "version": "2.0.0", "weight": 50}])
    assert constraints(md) == before


def test_bad_spread_is_a_spec_error_naming_the_field():
    with pytest.raises(SpecError) as err:
        parse(single(placement={"spread": "always"}))
    assert err.value.field == "spec.placement.spread"
    assert "soft, hard, none" in err.value.message
    with pytest.raises(SpecError, match=r"^spec.placement: "):
        parse(single(placement="soft"))


@pytest.mark.parametrize("example", ["fraud-ab.yaml", "fraud-single.yaml"])
def test_examples_on_one_node_never_wait_for_a_second(example):
    """The real-node e2e suite (one node, no zone label) applies these examples: soft spreading
    only scores nodes, it never filters one out, so every pod still fits the single node."""
    md = yaml.safe_load((ROOT / "examples" / example).read_text())
    md["metadata"].update(namespace="default", uid="u", generation=1)
    assert "placement" not in md["spec"]
    for name, tsc in constraints(md).items():
        assert tsc, name
        assert {c["whenUnsatisfiable"] for c in tsc} == {"ScheduleAnyway"}, name

