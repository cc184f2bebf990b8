"""The rollout's analysis and decision logic, without a cluster: metrics deltas -> verdict -> next state."""

import itertools
from datetime import datetime, timedelta

import pytest
from mlserving.operator.rollout import machine
from mlserving.operator.rollout.analysis import (
    ShadowStats,
    VersionStats,
    delta,
    parse_metrics,
    quantile_ms,
    shadow_stats,
    version_stats,
)
from mlserving.operator.rollout.decision import FAILED, INCONCLUSIVE, PASSED, Verdict, judge
from mlserving.operator.rollout.machine import Observed, step
from mlserving.operator.spec import parse
from mlserving.server.router.metrics import LATENCY_BUCKETS, RouterMetrics

T0 = datetime(2026, 1, 1, 12, 0, 0)


def spec(version="2.0.0", **rollout):
    return parse({"metadata": {"name": "fraud", "namespace": "ns", "uid": "u1", "generation": 2},
                  "spec": {"model": "fraud", "variants": [{"name": "stable", "version": version, "weight": 100}],
                           "rollout": {"steps": [20, 50], "intervalSeconds": 30, "minRequests": 10, **rollout}}})


def test_router_metrics_become_per_version_deltas_and_a_p99():
    m = RouterMetrics()
    for _ in range(90):
        m.count_request("stable", "1.0.0", 200)
        m.observe_upstream("stable", "1.0.0", 0.010)
    before = {"pod-a": parse_metrics(m.render().decode())}
    for i in range(100):
        m.count_request("stable", "2.0.0", 503 if i < 3 else 200)
        m.observe_upstream("stable", "2.0.0", 0.030 if i < 2 else 0.005)
    m.count_request("stable", "1.0.0", 200)
    m.observe_upstream("stable", "1.0.0", 0.010)
    d = delta(before, {"pod-a": parse_metrics(m.render().decode())})
    new, old = version_stats(d, "stable", "2.0.0"), version_stats(d, "stable", "1.0.0")
    assert (new.requests, new.errors, old.requests) == (100, 3, 1)
    assert 22 < new.p99_ms <= 34.7  # in the bucket holding the two 30 ms answers
    assert 9 < old.p99_ms <= 11.4


def test_a_restarted_router_pod_counts_from_zero():
    key = ("mlserving_router_requests_total", (("status", "200"), ("variant", "s"), ("version", "2")))
    assert delta({"a": {key: 500.0}}, {"a": {key: 40.0}, "b": {key: 7.0}}) == {key: 47.0}


def test_quantile_interpolates_inside_the_bucket():
    assert quantile_ms({0.01: 0, 0.02: 100, float("inf"): 100}, 0.5) == pytest.approx(15.0)
    assert quantile_ms({0.01: 0, float("inf"): 0}, 0.99) is None
    assert all(b / a <= 1.3 for a, b in itertools.pairwise(LATENCY_BUCKETS))


def test_shadow_counts_per_outcome():
    m = RouterMetrics()
    for outcome, n in (("same", 90), ("flip", 8), ("error", 2)):
        for _ in range(n):
            m.shadow_comparisons.labels("stable", "2.0.0", outcome).inc()
    d = delta({}, {"p": parse_metrics(m.render().decode())})
    assert shadow_stats(d, "stable", "2.0.0") == ShadowStats(100, 8, 0, 2)


ROLL = spec().rollout
GOOD_OLD = VersionStats(400, 0, 10.0)


@pytest.mark.parametrize("new, old, verdict, check", [
    (VersionStats(100, 0, 11.0), GOOD_OLD, PASSED, ""),
    (VersionStats(9, 0, 11.0), GOOD_OLD, INCONCLUSIVE, ""),
    (VersionStats(100, 2, 11.0), GOOD_OLD, FAILED, "maxErrorRatio"),
    (VersionStats(100, 1, 11.0), GOOD_OLD, PASSED, ""),  # exactly 1 %: at the limit, not over it
    (VersionStats(100, 0, 16.0), GOOD_OLD, FAILED, "maxLatencyRatio"),
    (VersionStats(100, 0, 16.0), VersionStats(5, 0, 10.0), PASSED, ""),  # too few old requests to compare
])
def test_live_step_verdicts(new, old, verdict, check):
    v = judge(ROLL, new, old)
    assert (v.verdict, v.failed_check) == (verdict, check)
    assert v.measured["requests"] == new.requests


def test_absolute_p99_limit():
    v = judge(spec(slo={"maxLatencyP99Ms": 50}).rollout, VersionStats(100, 0, 80.0), GOOD_OLD)
    assert (v.verdict, v.failed_check, v.value, v.limit) == (FAILED, "maxLatencyP99Ms", 80.0, 50.0)


@pytest.mark.parametrize("shadow, verdict, check", [
    (ShadowStats(100, 5, 0, 0), PASSED, ""),
    (ShadowStats(100, 6, 0, 0), FAILED, "maxDecisionFlipRatio"),
    (ShadowStats(100, 0, 6, 0), FAILED, "maxValueDeltaRatio"),
    (ShadowStats(100, 0, 0, 2), FAILED, "maxErrorRatio"),
    (ShadowStats(5, 5, 0, 0), INCONCLUSIVE, ""),
])
def test_shadow_verdicts(shadow, verdict, check):
    v = judge(ROLL, VersionStats(0, 0, None), GOOD_OLD, shadow)
    assert (v.verdict, v.failed_check) == (verdict, check)


SERVED_OLD = {"stable": {"version": "1.0.0", "storageUri": "file:///models/fraud/1.0.0", "replicas": 1,
                         "resources": None}}
READY = Observed(track_ready=True, routers_ready=True)


def never(_shadow):
    raise AssertionError("no analysis expected")


def run(s, state, now, verdict=None, observed=READY, command=None, served=SERVED_OLD):
    return step(s, state, served, observed, now, (lambda shadow: verdict) if verdict else never, command)


def started():
    t = run(spec(), None, T0, observed=Observed())
    assert t.state["phase"] == "Progressing" and t.state["stage"] == "Starting" and t.state["weight"] == 0
    assert t.state["track"].startswith("fraud-stable-") and len(t.state["track"]) == len("fraud-stable-") + 5
    assert t.events[0][1] == machine.EVENT_STARTED
    return t.state


PASS = Verdict(PASSED, "ok", measured={"requests": 100})
FAIL = Verdict(FAILED, "maxErrorRatio: 9%", "maxErrorRatio", 0.09, 0.01, {"requests": 100, "errorRatio": 0.09})


def test_healthy_rollout_walks_the_steps_then_promotes():
    state = started()
    t = run(spec(), state, T0 + timedelta(seconds=1))
    assert (t.state["stage"], t.state["weight"], t.rebaseline) == ("Steps", 20, True)
    assert [e[1] for e in t.events] == [machine.EVENT_STEP]
    early = run(spec(), t.state, T0 + timedelta(seconds=10))  # the interval has not elapsed
    assert early.state == t.state and early.requeue == pytest.approx(21)
    t = run(spec(), t.state, T0 + timedelta(seconds=31), PASS)
    assert t.state["weight"] == 50 and t.state["lastAnalysis"]["verdict"] == PASSED
    t = run(spec(), t.state, T0 + timedelta(seconds=61), PASS)
    assert (t.state["stage"], t.state["weight"]) == ("Promoting", 100)
    waiting = run(spec(), t.state, T0 + timedelta(seconds=62))
    assert waiting.state["phase"] == "Progressing" and waiting.requeue == machine.POLL_SECONDS
    done = run(spec(), t.state, T0 + timedelta(seconds=70), observed=Observed(True, True, promoted_ready=True))
    assert (done.state["phase"], done.state["weight"]) == ("Promoted", 100)
    assert done.events[0][1] == machine.EVENT_PROMOTED
    assert [h["weight"] for h in done.state["history"]] == [0, 20, 50, 100, 100]
    # Promoted: the same spec starts nothing new once the variant serves 2.0.0.
    served_new = {"stable": {**SERVED_OLD["stable"], "version": "2.0.0"}}
    assert run(spec(), done.state, T0 + timedelta(seconds=99), served=served_new).state == done.state


def test_failure_limit_failed_analyses_in_a_row_roll_back_with_the_check_and_value():
    state = run(spec(), started(), T0 + timedelta(seconds=1)).state
    t = run(spec(), state, T0 + timedelta(seconds=31), FAIL)
    assert t.state["phase"] == "Progressing" and t.state["failures"] == 1 and t.state["weight"] == 20
    t = run(spec(), t.state, T0 + timedelta(seconds=61), FAIL)
    assert (t.state["phase"], t.state["weight"]) == ("RolledBack", 0)
    assert t.state["lastAnalysis"]["failedCheck"] == "maxErrorRatio" and t.state["lastAnalysis"]["value"] == 0.09
    assert "maxErrorRatio" in t.state["message"]
    assert t.events[0][:2] == ("Warning", machine.EVENT_ROLLED_BACK)
    # Rolled back: the spec still says 2.0.0, and nothing restarts until it changes or retry.
    assert run(spec(), t.state, T0 + timedelta(seconds=90)).state == t.state
    again = run(spec(), t.state, T0 + timedelta(seconds=91), observed=Observed(), command="retry")
    assert again.state["stage"] == "Starting" and again.state["toVersion"] == "2.0.0"
    newer = run(spec("3.0.0"), t.state, T0 + timedelta(seconds=92), observed=Observed())
    assert newer.state["toVersion"] == "3.0.0" and newer.state["fromVersion"] == "1.0.0"


def test_a_pass_between_failures_resets_the_count():
    state = run(spec(), started(), T0 + timedelta(seconds=1)).state
    t = run(spec(), state, T0 + timedelta(seconds=31), FAIL)
    t = run(spec(steps=[20, 50, 70]), t.state, T0 + timedelta(seconds=61), PASS)
    assert t.state["failures"] == 0 and t.state["weight"] == 50


def test_inconclusive_waits_then_the_deadline_rolls_back():
    s = spec(progressDeadlineSeconds=100)
    state = run(s, started(), T0 + timedelta(seconds=1)).state
    wait = Verdict(INCONCLUSIVE, "3 new-version requests")
    t = run(s, state, T0 + timedelta(seconds=31), wait)
    assert t.state["weight"] == 20 and t.state["phase"] == "Progressing"
    t = run(s, t.state, T0 + timedelta(seconds=61), wait)
    t = run(s, t.state, T0 + timedelta(seconds=102), wait)
    assert t.state["phase"] == "RolledBack" and "progressDeadlineSeconds" in t.state["message"]


def test_pods_never_ready_roll_back_at_the_deadline():
    s = spec(progressDeadlineSeconds=60)
    t = run(s, started(), T0 + timedelta(seconds=30), observed=Observed(track_ready=False, routers_ready=True))
    assert t.state["stage"] == "Starting"
    t = run(s, t.state, T0 + timedelta(seconds=61), observed=Observed(track_ready=False, routers_ready=True))
    assert t.state["phase"] == "RolledBack"


def test_shadow_phase_comes_first_and_a_bad_shadow_rolls_back_before_any_live_weight():
    s = spec(shadowSeconds=60, failureLimit=1)
    t = run(s, started(), T0 + timedelta(seconds=1))
    assert (t.state["phase"], t.state["stage"], t.state["weight"]) == ("Shadowing", "Shadowing", 0)
    seen = []
    t2 = step(s, t.state, SERVED_OLD, READY, T0 + timedelta(seconds=31), lambda shadow: seen.append(shadow) or PASS)
    assert seen == [True] and t2.state["phase"] == "Shadowing"  # 30 of 60 s shadowed
    t3 = run(s, t2.state, T0 + timedelta(seconds=61), PASS)
    assert (t3.state["phase"], t3.state["weight"]) == ("Progressing", 20)
    flips = Verdict(FAILED, "maxDecisionFlipRatio: 30%", "maxDecisionFlipRatio", 0.3, 0.05)
    bad = run(s, t.state, T0 + timedelta(seconds=31), flips)
    assert bad.state["phase"] == "RolledBack" and all(h["weight"] == 0 for h in bad.state["history"])


def test_pause_holds_resume_continues_promote_and_abort_act_at_once():
    state = run(spec(), started(), T0 + timedelta(seconds=1)).state
    paused = run(spec(), state, T0 + timedelta(seconds=2), command="pause").state
    assert paused["phase"] == "Paused" and paused["weight"] == 20
    held = run(spec(), paused, T0 + timedelta(seconds=500))  # no analysis, no deadline while paused
    assert held.state == paused
    resumed = run(spec(), paused, T0 + timedelta(seconds=501), command="resume")
    assert resumed.state["phase"] == "Progressing" and resumed.rebaseline
    promoted = run(spec(), state, T0 + timedelta(seconds=3), command="promote")
    assert (promoted.state["stage"], promoted.state["weight"]) == ("Promoting", 100)
    aborted = run(spec(), paused, T0 + timedelta(seconds=3), command="abort")
    assert aborted.state["phase"] == "RolledBack" and "abort" in aborted.state["message"]


def test_unknown_command_is_a_warning_and_changes_nothing():
    state = run(spec(), started(), T0 + timedelta(seconds=1)).state
    t = run(spec(), state, T0 + timedelta(seconds=2), command="faster")
    assert t.state == state and t.events[0][:2] == ("Warning", machine.EVENT_COMMAND_UNKNOWN)


def test_no_served_annotation_or_same_version_starts_nothing():
    assert run(spec(), None, T0, served={"stable": None}).state is None
    assert run(spec("1.0.0"), None, T0).state is None


def test_operator_restart_without_a_baseline_waits_one_interval():
    state = run(spec(), started(), T0 + timedelta(seconds=1)).state
    t = step(spec(), state, SERVED_OLD, READY, T0 + timedelta(seconds=31), lambda shadow: None)
    assert t.state["weight"] == 20 and t.state["lastAnalysisAt"] == "2026-01-01T12:00:31Z"
    t = run(spec(), t.state, T0 + timedelta(seconds=61), PASS)
    assert t.state["weight"] == 50
