"""Status computed from the spec and observed Deployments: phase, traffic, variants, conditions."""

import pytest
from mlserving.operator import conditions
from mlserving.operator.status import Problem, compute_status, model_fetch_problems
from render_helpers import make_md, single

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def dep(name, want=2, ready=2, updated=None, total=None, generation=1, observed=1, conditions=()):
    updated = want if updated is None else updated
    total = updated if total is None else total
    return {"metadata": {"name": name, "generation": generation},
            "spec": {"replicas": want},
            "status": {"observedGeneration": observed, "replicas": total, "updatedReplicas": updated,
                       "readyReplicas": ready, "availableReplicas": ready, "conditions": list(conditions)}}


def all_ready(names=("fraud-stable", "fraud-candidate", "fraud-router")):
    return {n: dep(n) for n in names}


def ready_condition(status):
    (cond,) = [c for c in status["conditions"] if c["type"] == conditions.READY]
    return cond


def test_ready_when_every_deployment_rolled_out():
    status = compute_status(make_md(), all_ready(), None, T0)
    assert status["phase"] == "Ready"
    assert status["observedGeneration"] == 3
    assert status["url"] == "http://fraud.team-a.svc.cluster.local"
    assert status["traffic"] == "stable=1.0.0:90% candidate=2.0.0:10%"
    assert status["variants"] == [
        {"name": "stable", "version": "1.0.0", "weight": 90, "mirror": False, "replicas": 2, "readyReplicas": 2},
        {"name": "candidate", "version": "2.0.0", "weight": 10, "mirror": False, "replicas": 2, "readyReplicas": 2}]
    cond = ready_condition(status)
    assert cond == {"type": conditions.READY, "status": "True", "reason": conditions.ALL_REPLICAS_READY,
                    "message": cond["message"],
                    "lastTransitionTime": T0, "observedGeneration": 3}


def test_pending_without_deployments_and_progressing_while_some_missing_or_unready():
    assert compute_status(make_md(), {}, None, T0)["phase"] == "Pending"
    missing_router = all_ready(("fraud-stable", "fraud-candidate"))
    status = compute_status(make_md(), missing_router, None, T0)
    assert status["phase"] == "Progressing"
    assert "fraud-router: not created yet" in ready_condition(status)["message"]
    assert ready_condition(status)["status"] == "False"
    unready = all_ready() | {"fraud-candidate": dep("fraud-candidate", ready=1)}
    status = compute_status(make_md(), unready, None, T0)
    assert status["phase"] == "Progressing"
    assert "fraud-candidate: 1 of 2 replicas ready" in ready_condition(status)["message"]


@pytest.mark.parametrize("candidate", [
    dep("fraud-candidate", generation=2, observed=1),
    dep("fraud-candidate", updated=1, total=3),
    dep("fraud-candidate", updated=2, total=3),
])
def test_rollout_in_flight_is_not_ready(candidate):
    status = compute_status(make_md(), all_ready() | {"fraud-candidate": candidate}, None, T0)
    assert status["phase"] == "Progressing"


def test_single_variant_needs_no_router():
    assert compute_status(single(), {"fraud-stable": dep("fraud-stable")}, None, T0)["phase"] == "Ready"


def test_mirror_traffic_string():
    md = make_md([{"name": "stable", "version": "1.0.0", "weight": 100},
                  {"name": "shadow", "version": "3.0.0", "weight": 0, "mirror": True}])
    assert compute_status(md, {}, None, T0)["traffic"] == "stable=1.0.0:100% shadow=3.0.0:mirror"


def test_degraded_when_a_ready_deployment_loses_pods_without_a_spec_change():
    previous = compute_status(make_md(), all_ready(), None, T0)
    lost = all_ready() | {"fraud-stable": dep("fraud-stable", ready=1)}
    status = compute_status(make_md(), lost, previous, T1)
    assert status["phase"] == "Degraded"
    assert ready_condition(status)["reason"] == conditions.REPLICAS_UNAVAILABLE
    assert ready_condition(status)["lastTransitionTime"] == T1
    # the same loss right after a spec change is a rollout in progress
    assert compute_status(make_md(generation=4), lost, previous, T1)["phase"] == "Progressing"


def test_degraded_when_a_rollout_exceeds_its_deadline():
    stuck = dep("fraud-candidate", ready=1, conditions=[{"type": "Progressing", "status": "False",
                                                          "reason": "ProgressDeadlineExceeded",
                                                          "message": "ReplicaSet has timed out progressing."}])
    status = compute_status(make_md(), all_ready() | {"fraud-candidate": stuck}, None, T0)
    assert status["phase"] == "Degraded"
    assert "timed out" in ready_condition(status)["message"]


def test_last_transition_time_kept_while_status_unchanged():
    first = compute_status(make_md(), all_ready(), None, T0)
    again = compute_status(make_md(generation=4), all_ready(), first, T1)
    assert ready_condition(again)["lastTransitionTime"] == T0
    assert ready_condition(again)["observedGeneration"] == 4
    down = compute_status(make_md(generation=4), {}, again, T1)
    assert ready_condition(down)["lastTransitionTime"] == T1 and ready_condition(down)["status"] == "False"


def test_fatal_problem_fails_and_non_fatal_adds_a_condition():
    problems = [Problem(conditions.OWNERSHIP_CONFLICT, "Service team-a/fraud exists and is owned by someone else")]
    status = compute_status(make_md(), all_ready(), None, T0, problems)
    assert status["phase"] == "Failed"
    cond = ready_condition(status)
    assert (cond["status"], cond["reason"]) == ("False", conditions.OWNERSHIP_CONFLICT)
    assert "Service team-a/fraud" in cond["message"]
    warn = {"reason": conditions.GATEWAY_API_MISSING, "message": "no HTTPRoute CRD", "fatal": False,
            "type": conditions.HTTPROUTE_READY}
    status = compute_status(make_md(), all_ready(), None, T0, [warn])
    assert status["phase"] == "Ready"
    (route,) = [c for c in status["conditions"] if c["type"] == conditions.HTTPROUTE_READY]
    assert (route["status"], route["reason"]) == ("False", conditions.GATEWAY_API_MISSING)


def test_invalid_spec_is_failed_with_the_field_in_the_message():
    md = single()
    md["spec"]["variants"][0]["storageUri"] = "gs://bucket/fraud"
    status = compute_status(md, {}, None, T0)
    assert status["phase"] == "Failed"
    cond = ready_condition(status)
    assert cond["reason"] == conditions.INVALID_SPEC
    assert cond["message"].startswith("spec.variants[stable].storageUri: unsupported scheme")


def fetch_pod(name, state=None, last=None):
    st = {"name": "fetch-model", "state": state or {"waiting": {"reason": "CrashLoopBackOff"}}}
    if last:
        st["lastState"] = last
    return {"metadata": {"name": name}, "status": {"initContainerStatuses": [st]}}


def test_a_failed_model_fetch_fails_the_status_with_its_error_line():
    line = "mlserving fetch: error: s3://models/fraud/1.0.0: S3 error InvalidAccessKeyId: The access key ID you provided does not exist"
    pods = [fetch_pod("fraud-stable-abc", last={"terminated": {"exitCode": 1, "message": f"log line\n{line}\n"}}),
            fetch_pod("fraud-stable-ok", state={"terminated": {"exitCode": 0, "message": "fetched"}}),
            {"metadata": {"name": "no-status"}}]
    (problem,) = model_fetch_problems(pods, "fetch-model")
    assert problem.reason == conditions.MODEL_FETCH_FAILED and problem.fatal
    assert problem.message == f"pod fraud-stable-abc: init container fetch-model exited 1: {line}"
    status = compute_status(single(), {"fraud-stable": dep("fraud-stable", ready=0)}, None, T0, [problem])
    assert status["phase"] == "Failed"
    assert ready_condition(status)["reason"] == conditions.MODEL_FETCH_FAILED
    assert "s3://models/fraud/1.0.0" in ready_condition(status)["message"]


def test_a_running_or_succeeded_fetch_is_no_problem():
    pods = [fetch_pod("a", state={"running": {}}),
            fetch_pod("b", state={"terminated": {"exitCode": 0}}),
            {"metadata": {"name": "c"}, "status": {"initContainerStatuses": [
                {"name": "other", "state": {"terminated": {"exitCode": 2}}}]}}]
    assert model_fetch_problems(pods, "fetch-model") == []
