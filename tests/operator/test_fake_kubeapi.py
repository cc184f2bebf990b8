"""The in-memory API behaves as the operator relies on the API server to behave.

Each behaviour runs on the fake and, with the local control plane (marker ``cluster``), on the
real API server through KubeApi: the fake's answers are checked against the real thing, so the
fast operator tests built on it prove what they claim.
"""

import pytest
from fake_kubeapi import FakeKubeApi
from mlserving.operator.kinds import DEPLOYMENT, LEASE, kind_of
from mlserving.operator.kubeapi import ApiError, KubeApi

CONFIGMAP = kind_of("v1", "ConfigMap")


@pytest.fixture(params=["fake", pytest.param("api-server", marks=pytest.mark.cluster)])
def world(request):
    """(api, namespace): the fake, or KubeApi on the real API server in a fresh namespace."""
    if request.param == "fake":
        return FakeKubeApi(), "ns"
    cluster = request.getfixturevalue("cluster")
    namespace = request.getfixturevalue("k8s_namespace")
    return KubeApi.from_kubeconfig(str(cluster.kubeconfig)), namespace


def cm(ns, data, **meta):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": ns, **meta},
            "data": data}


def test_resource_versions_move_and_a_stale_replace_conflicts(world):
    api, ns = world
    first = api.create(CONFIGMAP, ns, cm(ns, {"a": "1"}))
    second = api.replace(CONFIGMAP, ns, "c", {**first, "data": {"a": "2"}})
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    with pytest.raises(ApiError) as err:
        api.replace(CONFIGMAP, ns, "c", {**first, "data": {"a": "3"}})
    assert err.value.status == 409 and err.value.transient
    with pytest.raises(ApiError) as err:
        api.create(CONFIGMAP, ns, cm(ns, {}))
    assert err.value.status == 409


def test_apply_owns_fields_removes_what_it_stops_sending_and_keeps_others_fields(world):
    api, ns = world
    api.apply(cm(ns, {"a": "1", "b": "2"}), "op")
    api.merge_patch(CONFIGMAP, ns, "c", {"data": {"mine": "x"}}, field_manager="someone")
    live = api.apply(cm(ns, {"a": "1"}), "op")
    assert live["data"] == {"a": "1", "mine": "x"}
    again = api.apply(cm(ns, {"a": "1"}), "op")
    assert again["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"], "a no-op apply writes"
    managers = {(e["manager"], e["operation"]) for e in live["metadata"]["managedFields"]}
    assert managers == {("op", "Apply"), ("someone", "Update")}


def test_apply_of_a_field_owned_by_another_manager_conflicts_unless_forced(world):
    api, ns = world
    api.apply(cm(ns, {"a": "1"}), "op")
    api.merge_patch(CONFIGMAP, ns, "c", {"data": {"a": "hand"}}, field_manager="kubectl-edit")
    with pytest.raises(ApiError) as err:
        api.apply(cm(ns, {"a": "1"}), "op", force=False)
    assert err.value.status == 409 and "data.a" in err.value.message
    assert api.apply(cm(ns, {"a": "1"}), "op", force=True)["data"] == {"a": "1"}


def test_deployment_replicas_default_to_one_when_nobody_applies_them(world):
    api, ns = world
    labels = {"app": "d"}
    template = {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "example/c:1"}]}}
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": ns},
           "spec": {"replicas": 3, "selector": {"matchLabels": labels}, "template": template}}
    without = {**dep, "spec": {"selector": {"matchLabels": labels}, "template": template}}
    api.apply(dep, "op")
    assert api.apply(without, "op")["spec"]["replicas"] == 1
    api.apply(dep, "op")
    api.apply({**dep, "spec": {"replicas": 3}}, "handover")
    assert api.apply(without, "op")["spec"]["replicas"] == 3
    assert api.get(DEPLOYMENT, ns, "d")["metadata"]["generation"] == 3  # 3 -> 1 -> 3; ownership moves alone do not count


def test_delete_precondition_selectors_and_discovery(world):
    api, ns = world
    made = api.create(CONFIGMAP, ns, cm(ns, {}, labels={"app": "x", "tier": "a"}))
    assert [o["metadata"]["name"] for o in api.list(CONFIGMAP, ns, "app=x,tier!=b,tier")] == ["c"]
    assert api.list(CONFIGMAP, ns, "app=y") == []
    assert api.delete(CONFIGMAP, ns, "c", uid="00000000-0000-0000-0000-000000000000") is False
    assert api.delete(CONFIGMAP, ns, "c", uid=made["metadata"]["uid"]) is True
    assert api.get(LEASE, ns, "nothing") is None
    assert api.group_versions("nothing.example.com") == []
    assert "v1" in api.group_versions("apps")


def test_the_fakes_own_controls():
    api = FakeKubeApi()
    made = api.create(CONFIGMAP, "ns", cm("ns", {}))
    assert api.list(CONFIGMAP, "other") == []
    api.fail("get", kind="ConfigMap", status=0, times=1)
    with pytest.raises(ApiError) as err:
        api.get(CONFIGMAP, "ns", "c")
    assert err.value.status == 0
    assert api.get(CONFIGMAP, "ns", "c")["metadata"]["uid"] == made["metadata"]["uid"]
    assert api.delete(CONFIGMAP, "ns", "c", uid=made["metadata"]["uid"]) is True
    assert api.get(CONFIGMAP, "ns", "c") is None
    assert api.group_versions("gateway.networking.k8s.io") == []
    api.served.add("gateway.networking.k8s.io")
    assert api.group_versions("gateway.networking.k8s.io") == ["v1"]
