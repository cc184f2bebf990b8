"""Chaos on the real node: faults injected under constant in-cluster load, each case asserting
what docs/reliability.md promises, every figure written to build/chaos-report.json.

One A/B ModelDeployment (90/10, two pods per variant) serves one load Job for the whole module
(see chaos_kit). The cases run in file order and share it; each judges the load in its own
window: 0 failed client requests, the paced load answered, and the time to recover.
"""

from __future__ import annotations

import json
import time

import pytest
from chaos_kit import (
    MD,
    NAMESPACE,
    OPERATOR_NAMESPACE,
    Case,
    Chaos,
    Report,
    container_status,
    ready,
    restarts,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RECOVERY_S = 60   # a killed server container is serving again
RESTORE_S = 30    # the operator rewrote a routing ConfigMap deleted or corrupted by hand
RESUME_S = 90     # the operator acts on a spec change after an API server restart or losing its leader


@pytest.fixture(scope="module")
def chaos(e2e_cluster):
    report = Report(e2e_cluster.provider.name)
    c = Chaos(e2e_cluster, report)
    try:
        c.install()
        c.expected_children = set(c.children())
        yield c
    finally:
        report.write()
        c.remove()
        # the suites after this one find the operator as deploy/ left it: both replicas ready
        wait_operator_available(c)


def patch_md(c: Chaos, ops: list[dict]) -> None:
    c.k.kubectl("patch", f"modeldeployment/{MD}", "-n", NAMESPACE, "--type=json", "-p", json.dumps(ops))


def weights_ops(stable: int, candidate: int) -> list[dict]:
    return [{"op": "replace", "path": "/spec/variants/0/weight", "value": stable},
            {"op": "replace", "path": "/spec/variants/1/weight", "value": candidate}]


def delete_leader(c: Chaos) -> str:
    leader = c.operator_leader()
    c.k.kubectl("delete", "pod", leader, "-n", OPERATOR_NAMESPACE, "--grace-period=0", "--force", "--wait=false")
    return leader


def wait_operator_available(c: Chaos) -> float:
    return c.wait_for("both operator replicas ready again", lambda: c.k.get_json(
        "deployment/mlserving-operator", namespace=OPERATOR_NAMESPACE)["status"].get("readyReplicas") == 2, 180)


def signal_and_wait_restarted(chaos: Chaos, pod: dict, signal: str) -> tuple[float, dict]:
    """Signal the pod's server process; seconds until its restarted container is ready, and the pod then."""
    name, before = pod["metadata"]["name"], restarts(pod)
    chaos.signal_container(pod, signal)
    seen = {}

    def back() -> bool:
        seen["pod"] = chaos.k.get_json(f"pod/{name}", namespace=NAMESPACE)
        return restarts(seen["pod"]) > before and ready(seen["pod"])

    return chaos.wait_for(f"server container of {name} ready again after {signal}", back, RECOVERY_S + 60), seen["pod"]


def test_server_container_killed_with_sigkill_loses_no_request(chaos):
    case = Case(chaos.report, "server-sigkill", "kill -9 of one stable server container (of 2) under load",
                "0 failed client requests (the router retries within the variant, then fails over); the "
                f"container serves again within {RECOVERY_S} s")
    start = time.time()
    recovery, _ = signal_and_wait_restarted(chaos, chaos.pods("stable")[0], "SIGKILL")
    chaos.check_load(case, chaos.load_between(start, time.time()))
    case.record(recovery_s=recovery)
    case.check(recovery <= RECOVERY_S, f"serving again only after {recovery} s")
    case.close()


def test_sigterm_to_a_server_lets_in_flight_requests_complete(chaos):
    case = Case(chaos.report, "server-sigterm", "SIGTERM to one candidate server container under load",
                "every request in flight completes (0 failed client requests); the server exits 0 after "
                "draining; it serves again")
    start = time.time()
    recovery, pod = signal_and_wait_restarted(chaos, chaos.pods("candidate")[0], "SIGTERM")
    chaos.check_load(case, chaos.load_between(start, time.time()))
    terminated = container_status(pod).get("lastState", {}).get("terminated", {})
    case.record(recovery_s=recovery, exit=terminated.get("exitCode"), reason=terminated.get("reason"))
    case.check(terminated.get("exitCode") == 0, f"the server did not exit cleanly after SIGTERM: {terminated}")
    case.close()


def test_routing_configmap_deleted_or_corrupted_keeps_serving_and_is_restored(chaos):
    case = Case(chaos.report, "routing-configmap", "the routing ConfigMap deleted, then its table corrupted",
                "0 failed client requests (routers keep the last good table); the operator restores the "
                f"ConfigMap within {RESTORE_S} s each time")
    good = chaos.routing_json()
    assert good, "no routing table to start from"
    start = time.time()
    chaos.k.kubectl("delete", "configmap", f"{MD}-routing", "-n", NAMESPACE)
    deleted = chaos.wait_for("routing ConfigMap recreated", lambda: chaos.routing_json() == good, RESTORE_S + 60)
    time.sleep(2)
    patch = json.dumps({"data": {"routing.json": '{"format": 1, "variants": [truncated'}})
    chaos.k.kubectl("patch", "configmap", f"{MD}-routing", "-n", NAMESPACE, "--type=merge", "-p", patch)
    corrupted = chaos.wait_for("routing ConfigMap repaired", lambda: chaos.routing_json() == good, RESTORE_S + 60)
    time.sleep(2)
    chaos.check_load(case, chaos.load_between(start, time.time()))
    case.record(restored_after_delete_s=deleted, restored_after_corruption_s=corrupted)
    case.check(deleted <= RESTORE_S, f"recreated only after {deleted} s")
    case.check(corrupted <= RESTORE_S, f"repaired only after {corrupted} s")
    case.close()


def test_api_server_restart_keeps_serving_and_the_operator_resumes(chaos):
    case = Case(chaos.report, "apiserver-restart", "kube-apiserver stopped, left down 5 s, started again",
                "serving never stops (0 failed client requests: routers keep their table); the operator "
                f"reconnects and applies a spec change made afterwards within {RESUME_S} s")
    start = time.time()
    chaos.restart_daemon("kube-apiserver", 5)
    back = time.time()
    patch_md(chaos, weights_ops(80, 20))
    resumed = chaos.wait_for("operator applied 80/20 after the restart",
                             lambda: chaos.routing_weights() == {"stable": 80, "candidate": 20}, RESUME_S + 60)
    chaos.check_load(case, chaos.load_between(start, time.time()))
    case.record(api_server_away_s=round(back - start, 1), operator_resumed_s=resumed)
    case.check(resumed <= RESUME_S, f"the operator acted only {resumed} s after the API server was back")
    case.close()


def test_operator_leader_deleted_mid_reconcile_converges_without_duplicates_or_orphans(chaos):
    case = Case(chaos.report, "operator-deleted-mid-reconcile",
                "the leading operator's pod force-deleted right after a spec change",
                f"the standby takes over and applies the change within {RESUME_S} s; every child exactly "
                "once and controlled by the ModelDeployment; observedGeneration caught up, Ready")
    wait_operator_available(chaos)
    start = time.time()
    patch_md(chaos, weights_ops(50, 50))
    time.sleep(0.3)
    leader = delete_leader(chaos)
    converged = chaos.wait_for("weights 50/50 applied after the leader was deleted",
                               lambda: chaos.routing_weights() == {"stable": 50, "candidate": 50}, RESUME_S + 60)
    chaos.wait_ready()
    chaos.check_load(case, chaos.load_between(start, time.time()))
    new_leader = chaos.operator_leader()
    case.record(deleted_leader=leader, new_leader=new_leader, converged_s=converged)
    case.check(new_leader != leader, f"lease still names the deleted pod {leader}")
    case.check(converged <= RESUME_S, f"converged only after {converged} s")
    for problem in chaos.children_problems(chaos.expected_children) + chaos.settled_problems():
        case.check(False, problem)
    case.close()


def test_rolling_restart_of_router_and_variant_loses_no_request(chaos):
    case = Case(chaos.report, "rolling-restart", "kubectl rollout restart of the router and the stable variant",
                "0 failed client requests")
    start = time.time()
    chaos.k.kubectl("rollout", "restart", f"deployment/{MD}-router", f"deployment/{MD}-stable", "-n", NAMESPACE)
    for deployment in (f"{MD}-router", f"{MD}-stable"):
        chaos.k.kubectl("rollout", "status", f"deployment/{deployment}", "-n", NAMESPACE, "--timeout=180s",
                        timeout=200)
    done = time.time()
    # pods of the old ReplicaSets go on terminating after `rollout status`: the window covers them
    chaos.wait_for("old router and stable pods gone", lambda: all(
        not p["metadata"].get("deletionTimestamp") for v in ("router", "stable") for p in chaos.pods(v)), 120)
    chaos.check_load(case, chaos.load_between(start, time.time()))
    case.record(rollout_s=round(done - start, 1))
    case.close()


def test_operator_killed_mid_rollout_resumes_and_promotes(chaos):
    case = Case(chaos.report, "operator-deleted-mid-rollout",
                "the leading operator's pod force-deleted while a rollout is at its first step",
                "the standby resumes the rollout where it was and promotes it; no track left behind; every "
                "candidate pod on the new version; 0 failed client requests")
    wait_operator_available(chaos)
    rollout = {"steps": [50], "intervalSeconds": 10, "failureLimit": 3, "minRequests": 10,
               "progressDeadlineSeconds": 300, "slo": {"maxErrorRatio": 0.05, "maxLatencyRatio": 20}}
    start = time.time()
    patch_md(chaos, [{"op": "add", "path": "/spec/rollout", "value": rollout},
                     {"op": "replace", "path": "/spec/variants/1/version", "value": "2.1.0"}])

    def rollout_status() -> dict:
        return (chaos.md().get("status") or {}).get("rollout") or {}

    at_step = chaos.wait_for("rollout at its first step", lambda: rollout_status().get("weight", 0) > 0
                             and rollout_status().get("phase") == "Progressing", 180)
    started_at = rollout_status().get("startedAt")
    leader = delete_leader(chaos)
    killed = time.time()
    promoted = chaos.wait_for("rollout promoted after the leader was deleted",
                              lambda: rollout_status().get("phase") == "Promoted", 300, interval=1)

    def candidate_on_new_version() -> bool:
        pods = chaos.pods("candidate")
        return bool(pods) and all(p["metadata"]["labels"].get("mlserving.io/model-version") == "2.1.0"
                                  and not p["metadata"].get("deletionTimestamp") for p in pods)

    chaos.wait_for("every candidate pod on 2.1.0", candidate_on_new_version, 180)
    tracks = chaos.wait_for("the rollout's track removed", lambda: not chaos.k.get_json(
        "deployments,services", "-l", "mlserving.io/track", namespace=NAMESPACE)["items"], 120)
    chaos.check_load(case, chaos.load_between(start, time.time()))
    final = rollout_status()
    history = final.get("history", [])
    case.record(step_reached_s=at_step, promoted_after_kill_s=promoted, track_removed_s=tracks,
                deleted_leader=leader, rollout_history=history, total_s=round(time.time() - killed, 1))
    # a rollout started over would carry a new startedAt and a history beginning again
    case.check(final.get("startedAt") == started_at,
               f"the rollout started over after the kill: startedAt {started_at} -> {final.get('startedAt')}")
    case.check(any(h.get("weight") == 50 for h in history), f"the history lost the step before the kill: {history}")
    for problem in chaos.children_problems(chaos.expected_children) + chaos.settled_problems():
        case.check(False, problem)
    case.close()
