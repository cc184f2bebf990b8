"""The Reconciler and the applier on the in-memory API: the failure paths that decide whether a
cluster stays healthy. (The happy paths, HA and RBAC also run against a real API server in
tests/operator_cluster/.)"""

from mlserving.operator import conditions
from mlserving.operator.apply import HANDOVER_MANAGER, our_fields_fingerprint, we_apply_replicas
from mlserving.operator.kinds import DEPLOYMENT, MODEL_DEPLOYMENT, kind_of
from operator_world import NAMESPACE, non_optional_child_kinds, world
from render_helpers import SETTINGS, render

SERVICE = kind_of("v1", "Service")
CONFIGMAP = kind_of("v1", "ConfigMap")
AUTOSCALING = {"minReplicas": 2, "maxReplicas": 6}


def foreign_service(name="fraud", owner=None) -> dict:
    meta = {"name": name, "namespace": NAMESPACE, "labels": {"app": "theirs"}}
    if owner:
        meta["ownerReferences"] = [owner]
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"selector": {"app": "theirs"}, "ports": [{"port": 80}]}}


def test_reconcile_creates_every_child_reports_ready_and_then_writes_nothing():
    w = world(autoscaling=AUTOSCALING)
    assert w.reconcile().kind == "ok"
    assert set(w.children()) == set(render(w.md(), SETTINGS))
    assert {kind for kind, _ in w.children()} == non_optional_child_kinds()
    assert w.md()["status"]["phase"] == "Progressing"
    w.roll_out()
    assert w.reconciler.refresh_status(NAMESPACE, "fraud").kind == "ok"
    assert w.md()["status"]["phase"] == "Ready" and ("Normal", conditions.EVENT_READY) in w.events()

    versions = {key: obj["metadata"]["resourceVersion"] for key, obj in w.children().items()}
    status_rv = w.md()["metadata"]["resourceVersion"]
    assert w.reconcile().kind == "ok"
    assert {key: obj["metadata"]["resourceVersion"] for key, obj in w.children().items()} == versions
    assert w.md()["metadata"]["resourceVersion"] == status_rv


def test_ownership_conflict_writes_nothing_says_why_and_recovers_once_the_name_is_free():
    w = world()
    w.api.put(foreign_service(), manager="someone")
    result = w.reconcile()
    assert result.kind == "permanent" and "Service team-a/fraud already exists" in result.message
    assert [c for c in w.api.writes() if c[0] == "apply"] == [], "nothing may be half-applied"
    assert w.children() == {}
    ready = w.condition(conditions.READY)
    assert (w.md()["status"]["phase"], ready["status"], ready["reason"]) == (
        "Failed", "False", conditions.OWNERSHIP_CONFLICT)
    assert "Service team-a/fraud" in ready["message"]
    assert ("Warning", conditions.OWNERSHIP_CONFLICT) in w.events()
    assert w.api.get(SERVICE, NAMESPACE, "fraud")["spec"]["selector"] == {"app": "theirs"}, "taken over"

    w.api.delete(SERVICE, NAMESPACE, "fraud")
    assert w.reconcile().kind == "ok"
    assert set(w.children()) == set(render(w.md(), SETTINGS))
    assert w.condition(conditions.READY)["reason"] != conditions.OWNERSHIP_CONFLICT


def test_a_child_of_another_model_deployment_is_a_conflict_too():
    w = world()
    other = {"apiVersion": "mlserving.io/v1alpha1", "kind": "ModelDeployment", "name": "spam", "uid": "u-spam",
             "controller": True}
    w.api.put(foreign_service("fraud-stable", owner=other))
    assert w.reconcile().kind == "permanent"
    assert "controlled by ModelDeployment spam" in w.condition(conditions.READY)["message"]


def test_a_failed_apply_part_way_is_reported_and_the_next_reconcile_completes_it():
    w = world(autoscaling=AUTOSCALING)
    w.api.fail("apply", kind="Deployment", name="fraud-candidate", status=500)
    result = w.reconcile()
    assert result.kind == "temporary"
    kinds = {kind for kind, _ in w.children()}
    assert {"ConfigMap", "Service", "Role", "Deployment"} <= kinds
    assert "HorizontalPodAutoscaler" not in kinds, "a later wave started after a failed one"
    applied = w.condition(conditions.CHILDREN_APPLIED)
    assert (applied["status"], applied["reason"]) == ("False", conditions.APPLY_INCOMPLETE)
    total = len(render(w.md(), SETTINGS))
    assert f"of {total} children" in applied["message"] and "fraud-candidate" in applied["message"]
    assert (w.condition(conditions.READY)["status"], w.md()["status"]["phase"]) == ("False", "Progressing")

    assert w.reconcile().kind == "ok"
    assert set(w.children()) == set(render(w.md(), SETTINGS))
    assert w.condition(conditions.CHILDREN_APPLIED) is None
    assert w.condition(conditions.READY)["reason"] != conditions.APPLY_INCOMPLETE


def test_an_object_the_api_server_refuses_fails_for_good():
    w = world()
    w.api.fail("apply", kind="Deployment", status=422, message="spec.template: Invalid value")
    result = w.reconcile()
    assert result.kind == "permanent"
    assert w.condition(conditions.READY)["reason"] == conditions.APPLY_REJECTED
    assert w.md()["status"]["phase"] == "Failed"


def test_failed_reads_before_any_write_leave_nothing_and_are_retried():
    w = world()
    w.api.fail("list", kind="Deployment", status=0)
    result = w.reconcile()
    assert result.kind == "temporary" and result.delay > 0
    assert w.api.writes() == [("create", "ModelDeployment", NAMESPACE, "fraud")]
    assert w.reconcile().kind == "ok"


def test_a_status_write_that_fails_is_retried():
    w = world()
    w.api.fail("merge_patch", kind="ModelDeployment", status=503)
    assert w.reconcile().kind == "temporary"
    assert w.reconcile().kind == "ok" and w.md()["status"]["phase"] == "Progressing"


def test_a_name_held_by_a_deleted_predecessor_waits_for_garbage_collection():
    w = world()
    predecessor = {"apiVersion": "mlserving.io/v1alpha1", "kind": "ModelDeployment", "name": "fraud",
                   "uid": "u-old", "controller": True}
    w.api.put(foreign_service("fraud-stable", owner=predecessor))
    result = w.reconcile()
    assert result.kind == "temporary"
    applied = w.condition(conditions.CHILDREN_APPLIED)
    assert (applied["status"], applied["reason"]) == ("False", conditions.WAITING_FOR_PREDECESSOR)
    assert w.children() == {}
    assert w.api.collect_garbage() == ["/Service team-a/fraud-stable"]
    assert w.reconcile().kind == "ok" and w.condition(conditions.CHILDREN_APPLIED) is None


def test_replicas_to_hpa_keeps_the_live_count_and_back_to_fixed_replicas():
    variants = [{"name": "stable", "version": "1.0.0", "weight": 100, "replicas": 3}]
    w = world(variants)
    w.reconcile()
    dep = w.api.get(DEPLOYMENT, NAMESPACE, "fraud-stable")
    assert dep["spec"]["replicas"] == 3 and we_apply_replicas(dep)

    def to_hpa(spec):
        del spec["variants"][0]["replicas"]
        spec["autoscaling"] = {"minReplicas": 2, "maxReplicas": 8}
    w.change_spec(to_hpa)
    assert w.reconcile().kind == "ok"
    dep = w.api.get(DEPLOYMENT, NAMESPACE, "fraud-stable")
    assert dep["spec"]["replicas"] == 3, "dropping replicas from the apply scaled the variant down"
    assert not we_apply_replicas(dep)
    assert ("HorizontalPodAutoscaler", "fraud-stable") in w.children()
    assert HANDOVER_MANAGER in {e["manager"] for e in dep["metadata"]["managedFields"]}

    w.scale("fraud-stable", 5)  # the HPA decides
    w.reconcile()
    assert w.api.get(DEPLOYMENT, NAMESPACE, "fraud-stable")["spec"]["replicas"] == 5

    def to_fixed(spec):
        del spec["autoscaling"]
        spec["variants"][0]["replicas"] = 2
    w.change_spec(to_fixed)
    assert w.reconcile().kind == "ok"
    dep = w.api.get(DEPLOYMENT, NAMESPACE, "fraud-stable")
    assert dep["spec"]["replicas"] == 2 and we_apply_replicas(dep)
    assert ("HorizontalPodAutoscaler", "fraud-stable") not in w.children()


def test_children_no_longer_wanted_are_pruned_and_nothing_else_is():
    w = world(autoscaling=AUTOSCALING)
    w.reconcile()
    before = set(w.children())
    unrelated = foreign_service("fraud-extra")
    unrelated["metadata"]["labels"] = {"app.kubernetes.io/instance": "fraud",
                                       "app.kubernetes.io/managed-by": "mlserving-operator"}
    w.api.put(unrelated)  # our labels, but not controlled by the ModelDeployment

    w.change_spec(lambda spec: spec.update(variants=[{"name": "stable", "version": "1.0.0", "weight": 100}]))
    assert w.reconcile().kind == "ok"
    after = set(w.children())
    assert after == set(render(w.md(), SETTINGS))
    gone = before - after
    assert ("Deployment", "fraud-candidate") in gone and ("Deployment", "fraud-router") in gone
    assert ("HorizontalPodAutoscaler", "fraud-candidate") in gone and ("Role", "fraud-router") in gone
    assert w.api.get(SERVICE, NAMESPACE, "fraud-extra") is not None


def test_a_hand_edit_of_a_field_we_own_is_taken_back():
    w = world()
    w.reconcile()
    name = "fraud-routing"
    original = w.api.get(CONFIGMAP, NAMESPACE, name)
    known = w.reconciler.fingerprints[original["metadata"]["uid"]]
    w.api.edit(CONFIGMAP, NAMESPACE, name, lambda cm: cm["data"].update({"routing.json": "{}"}))
    assert our_fields_fingerprint(w.api.get(CONFIGMAP, NAMESPACE, name)) != known  # what triggers a reconcile
    w.reconcile()
    assert w.api.get(CONFIGMAP, NAMESPACE, name)["data"] == original["data"]


def test_a_child_deleted_by_hand_is_recreated_as_it_was_and_nothing_else_changes():
    w = world()
    w.reconcile()
    name = "fraud-routing"
    original = w.api.get(CONFIGMAP, NAMESPACE, name)
    versions = {key: obj["metadata"]["resourceVersion"] for key, obj in w.children().items() if key[1] != name}
    assert w.api.delete(CONFIGMAP, NAMESPACE, name)
    w.api.finish_deletion(CONFIGMAP, NAMESPACE, name)
    assert w.reconcile().kind == "ok"
    restored = w.api.get(CONFIGMAP, NAMESPACE, name)
    assert restored["data"] == original["data"]
    assert restored["metadata"]["uid"] != original["metadata"]["uid"]
    assert {key: obj["metadata"]["resourceVersion"] for key, obj in w.children().items() if key[1] != name} == versions


def test_gateway_route_follows_the_gateway_api_being_installed():
    w = world(routing={"gateway": {"parentRefs": [{"name": "public"}]}})
    assert w.reconcile().kind == "ok"
    route = w.condition(conditions.HTTPROUTE_READY)
    assert (route["status"], route["reason"]) == ("False", conditions.GATEWAY_API_MISSING)
    assert ("Warning", conditions.GATEWAY_API_MISSING) in w.events()
    assert all(kind != "HTTPRoute" for kind, _ in w.children())

    w.api.served.add("gateway.networking.k8s.io")
    w.clock.advance(61)  # the discovery answer is cached for a minute
    assert w.reconcile().kind == "ok"
    assert ("HTTPRoute", "fraud") in w.children()
    assert w.condition(conditions.HTTPROUTE_READY) is None


def test_a_deleted_model_deployment_is_gone_not_an_error():
    w = world()
    w.reconcile()
    w.api.delete(MODEL_DEPLOYMENT, NAMESPACE, "fraud")
    assert w.reconciler.reconcile_by_name(NAMESPACE, "fraud").kind == "gone"
    assert w.reconciler.refresh_status(NAMESPACE, "fraud").kind == "gone"


def test_a_ready_model_deployment_whose_update_fails_part_way_is_not_reported_ready():
    w = world()
    w.reconcile()
    w.roll_out()
    w.reconciler.refresh_status(NAMESPACE, "fraud")
    assert w.md()["status"]["phase"] == "Ready"
    w.change_spec(lambda spec: spec["variants"][1].update(version="2.1.0"))
    w.api.fail("apply", kind="Deployment", name="fraud-candidate", status=500)
    assert w.reconcile().kind == "temporary"
    ready = w.condition(conditions.READY)
    assert (w.md()["status"]["phase"], ready["status"], ready["reason"]) == (
        "Progressing", "False", conditions.APPLY_INCOMPLETE)
    assert w.reconcile().kind == "ok"
    assert w.condition(conditions.CHILDREN_APPLIED) is None


def test_a_failed_model_fetch_is_read_from_the_pods_into_the_status_and_rechecked():
    from mlserving.operator.apply import selector_for
    from mlserving.operator.kinds import POD

    variants = [{"name": "stable", "version": "1.0.0", "weight": 100, "storageUri": "s3://models/fraud/1.0.0"}]
    w = world(variants, storage={"s3": {"endpoint": "http://10.244.0.1:8333", "secretName": "model-store"}})
    looks = []
    w.reconciler.schedule = lambda namespace, name, delay: looks.append((namespace, name, delay))
    assert w.reconcile().kind == "ok"
    # No pod has failed yet, but the fetch is under way: its failure would not change the Deployment.
    assert looks and looks[-1] == (NAMESPACE, "fraud", 15)
    line = "mlserving fetch: error: s3://models/fraud/1.0.0: S3 error SignatureDoesNotMatch: bad signature"
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "fraud-stable-x1", "namespace": NAMESPACE,
                        "labels": dict(kv.split("=") for kv in selector_for("fraud").split(","))},
           "status": {"initContainerStatuses": [{"name": "fetch-model", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                                                 "lastState": {"terminated": {"exitCode": 1, "message": line}}}]}}
    w.api.put(pod)
    result = w.reconciler.refresh_status(NAMESPACE, "fraud")
    assert result.kind == "temporary" and result.delay == 15, "re-checked: pods change without the Deployment"
    ready = w.condition(conditions.READY)
    assert (w.md()["status"]["phase"], ready["reason"]) == ("Failed", conditions.MODEL_FETCH_FAILED)
    assert ready["message"] == f"pod fraud-stable-x1: init container fetch-model exited 1: {line}"
    assert ("Warning", conditions.MODEL_FETCH_FAILED) in w.events()

    w.api.delete(POD, NAMESPACE, "fraud-stable-x1")  # the next try fetched it and the pod rolled out
    w.roll_out()
    looks.clear()
    assert w.reconciler.refresh_status(NAMESPACE, "fraud").kind == "ok"
    assert w.md()["status"]["phase"] == "Ready"
    assert looks == [], "rolled out: nothing left to watch"
