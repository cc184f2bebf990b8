"""Unit tests of the kopf layer's pure parts: apply helpers, Lease settings, the requeue."""

import asyncio

import pytest
from mlserving.operator.apply import (
    FIELD_MANAGER,
    ApplyFailed,
    _prepared,
    our_fields_fingerprint,
    sort_children,
    waves,
)
from mlserving.operator.kubeapi import ApiError
from mlserving.operator.leader import LeaseConfig
from mlserving.operator.reconcile import Result
from mlserving.operator.requeue import Requeue

MD = {"metadata": {"name": "fraud", "namespace": "team-a", "uid": "uid-1"}}


def managed(*entries):
    return {"metadata": {"managedFields": list(entries)}}


def entry(manager, fields, operation="Apply", subresource=None):
    out = {"manager": manager, "operation": operation, "fieldsV1": fields}
    if subresource:
        out["subresource"] = subresource
    return out


def test_fingerprint_follows_only_our_apply_entry():
    ours = entry(FIELD_MANAGER, {"f:spec": {"f:selector": {"f:app": {}}}})
    base = our_fields_fingerprint(managed(ours))
    assert base is not None
    # A controller writing status or scale, or anyone's Update elsewhere, leaves it alone.
    assert our_fields_fingerprint(managed(ours, entry("kube-controller-manager", {"f:status": {}}, "Update",
                                                      "status"))) == base
    assert our_fields_fingerprint(managed(entry(FIELD_MANAGER, {"f:status": {}}, "Update", "status"),
                                          ours)) == base
    # A field taken from us (a hand edit) changes it; no entry at all gives None.
    assert our_fields_fingerprint(managed(entry(FIELD_MANAGER, {"f:spec": {}}))) != base
    assert our_fields_fingerprint(managed(entry("kubectl-edit", {"f:spec": {}}, "Update"))) is None


def test_applier_refuses_a_child_the_renderer_did_not_give_to_the_model_deployment():
    ours = {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "fraud", "namespace": "team-a",
                         "ownerReferences": [{"uid": "uid-1", "controller": True, "kind": "ModelDeployment",
                                              "name": "fraud"}]}}
    assert _prepared(MD, ours) is ours
    elsewhere = {**ours, "metadata": {**ours["metadata"], "namespace": "elsewhere"}}
    someone_elses = {**ours, "metadata": {**ours["metadata"], "ownerReferences": [
        {"uid": "other", "controller": True, "kind": "X", "name": "x"}]}}
    for child in (elsewhere, someone_elses):
        with pytest.raises(ValueError, match="not a namespaced child controlled by ModelDeployment fraud"):
            _prepared(MD, child)


def test_children_are_applied_dependencies_first():
    kinds = [("policy/v1", "PodDisruptionBudget"), ("apps/v1", "Deployment"), ("v1", "Service"),
             ("v1", "ConfigMap"), ("autoscaling/v2", "HorizontalPodAutoscaler"),
             ("rbac.authorization.k8s.io/v1", "Role")]
    ordered = [c["kind"] for c in sort_children([{"apiVersion": a, "kind": k} for a, k in kinds])]
    assert ordered == ["ConfigMap", "Role", "Service", "Deployment", "HorizontalPodAutoscaler",
                       "PodDisruptionBudget"]
    assert [[c["kind"] for c in wave] for wave in waves([{"apiVersion": a, "kind": k} for a, k in kinds])] == [
        ["ConfigMap", "Role", "Service"], ["Deployment"], ["HorizontalPodAutoscaler", "PodDisruptionBudget"]]


@pytest.mark.parametrize(("status", "permanent"), [(422, True), (400, True), (500, False), (0, False),
                                                   (409, False), (403, False)])
def test_apply_failure_is_permanent_only_when_the_object_is_refused(status, permanent):
    failed = ApplyFailed("Deployment a/b", ApiError(status, "x", "y"), ["ConfigMap a/c"], 5)
    assert failed.permanent is permanent
    assert "applied 1 of 5 children" in str(failed)


def test_lease_settings_from_env():
    cfg = LeaseConfig.from_env({"MLSERVING_LEASE_NAMESPACE": "ops", "POD_NAME": "op-0",
                                "MLSERVING_LEASE_DURATION": "15"})
    assert (cfg.namespace, cfg.name, cfg.identity) == ("ops", "mlserving-operator", "op-0")
    assert cfg.retry_period < cfg.renew_deadline < cfg.lease_duration
    with pytest.raises(ValueError, match="MLSERVING_LEASE_DURATION"):
        LeaseConfig.from_env({"MLSERVING_LEASE_DURATION": "1"})


def test_requeue_coalesces_kicks_and_retries_transient_failures():
    calls = []
    outcomes = {"full": [Result("temporary", "api down", 0.01), Result("ok")]}

    def full(ns, name):
        calls.append(("full", ns, name))
        return outcomes["full"].pop(0) if outcomes["full"] else Result("ok")

    def status(ns, name):
        calls.append(("status", ns, name))
        return Result("ok")

    async def scenario():
        queue = Requeue(full, status, workers=2, delay=0.05, max_backoff=0.05)
        queue.start()
        for _ in range(5):
            queue.kick("a", "x", full=False)
        queue.kick("a", "x", full=True)   # a full reconcile wins over the status refreshes
        queue.kick("b", "y", full=False)
        # Wait for the work itself (the status run, the failed run and its retry), not a fixed time.
        deadline = asyncio.get_running_loop().time() + 30
        while len(calls) < 3:
            assert asyncio.get_running_loop().time() < deadline, calls
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # room for a wrong extra run to show up
        await queue.stop()

    asyncio.run(scenario())
    assert calls.count(("status", "b", "y")) == 1
    # one coalesced full run that failed transiently, then its retry; no status-only run for a/x
    assert [c for c in calls if c[1:] == ("a", "x")] == [("full", "a", "x"), ("full", "a", "x")]
