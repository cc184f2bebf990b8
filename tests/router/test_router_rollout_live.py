"""A rollout driven by the real Reconciler against a real `mlserving router` process and real
upstream processes: the operator's routing table is written to the router's table file, its
analysis scrapes the router's /metrics, a load client runs all along. Kubernetes itself is the
in-memory API of tests/operator (the real cluster runs this in tests/e2e)."""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import threading
import time
from pathlib import Path

import aiohttp
import pytest
from router_testkit import Answer, http_get, one_request, start_fake, start_router, write_raw

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))
from mlserving.operator.kinds import KINDS
from mlserving.operator.rollout.analysis import parse_metrics
from operator_world import world
from test_rollout_reconcile import rollout_reconciler

pytestmark = pytest.mark.slow
DEP = KINDS[("apps/v1", "Deployment")]
CM = KINDS[("v1", "ConfigMap")]
BODY = json.dumps({"features": [0.1] * 20}).encode()


class Load:
    """Requests one after the other from a few clients until stopped."""

    def __init__(self, url: str, clients: int = 4):
        self.url, self.clients = url, clients
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self):
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            async def client():
                while not self._stop.is_set():
                    self.answers.append(await one_request(session, self.url, BODY))
            await asyncio.gather(*(client() for _ in range(self.clients)))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(30)


class Loop:
    def __init__(self, tmp_path, logs, new_fail_every: int):
        self.procs = [start_fake("v1", logs), start_fake("v2", logs, fail_every=new_fail_every)]
        self.old, self.new = self.procs
        self.table = tmp_path / "routing.json"
        self.world = world([{"name": "stable", "version": "1.0.0", "weight": 100}])
        self.api = self.world.api
        self.router = None
        self.wall = time.time()
        self.world.reconciler = rollout_reconciler(self.world, lambda api, ns, name: {
            "router": parse_metrics(http_get(self.router.url + "/metrics")[1].decode())})
        self.tick()
        self.router = start_router(self.table, logs)
        self.procs.append(self.router)
        self.timeline: list[tuple[float, str, int]] = []

    def upstream_of(self, service_url: str) -> str:
        """A Service URL of the table -> the local process its pods are (by the pods' version)."""
        name = service_url.split("//")[1].split(".")[0]
        dep = self.api.get(DEP, "team-a", name)
        version = dep["spec"]["template"]["metadata"]["labels"]["mlserving.io/model-version"]
        return (self.old if version == "1.0.0" else self.new).url

    def tick(self):
        self.world.clock.advance(time.time() - self.wall)  # the world's clock follows real time
        self.wall = time.time()
        assert self.world.reconcile().ok
        self.world.roll_out()  # the Deployment controller and kubelet: every pod ready
        raw = json.loads(self.api.get(CM, "team-a", "fraud-routing")["data"]["routing.json"])
        for v in raw["variants"]:
            v["url"] = self.upstream_of(v["url"])
            for t in v.get("tracks", []):
                t["url"] = self.upstream_of(t["url"])
        write_raw(self.table, json.dumps(raw))
        state = (self.world.md().get("status") or {}).get("rollout")
        if state and (not self.timeline or self.timeline[-1][1:] != (state["phase"], state["weight"])):
            self.timeline.append((time.monotonic(), state["phase"], state["weight"]))
        return state

    def start(self, rollout: dict):
        def change(spec):
            spec["variants"][0]["version"] = "2.0.0"
            spec["rollout"] = rollout
        self.world.change_spec(change)

    def run_until(self, phases, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.tick()
            if state and state["phase"] in phases:
                return state
            time.sleep(0.25)
        pytest.fail(f"no {phases} within {timeout} s: {self.timeline}")

    def stop(self):
        for p in self.procs:
            p.stop()


@pytest.fixture
def logs(tmp_path_factory):
    return tmp_path_factory.mktemp("rollout-live-logs")


ROLLOUT = {"steps": [20, 50], "intervalSeconds": 2, "minRequests": 20, "failureLimit": 2,
           "slo": {"maxLatencyRatio": 10}}


def test_healthy_version_is_promoted_without_a_failed_request(tmp_path, logs):
    loop = Loop(tmp_path, logs, new_fail_every=0)
    try:
        with Load(loop.router.url + "/predict") as load:
            time.sleep(1)
            loop.start(ROLLOUT)
            state = loop.run_until({"Promoted", "RolledBack"}, 60)
            time.sleep(1)  # the promoted table in force for a while
            loop.tick()
        print("weight timeline:", [(round(t - loop.timeline[0][0], 1), p, w) for t, p, w in loop.timeline])
    finally:
        loop.stop()
    assert state["phase"] == "Promoted", state
    assert [w for _, _, w in loop.timeline] == [0, 20, 50, 100, 100]
    statuses = collections.Counter(a.status for a in load.answers)
    assert set(statuses) == {200}, statuses
    versions = [a.version for a in load.answers]
    assert versions.count("2.0.0") > 0 and versions.count("1.0.0") > 0
    assert set(versions[-20:]) == {"2.0.0"}
    assert state["lastAnalysis"]["requests"] >= 20


def test_partly_failing_version_is_rolled_back_naming_the_check(tmp_path, logs):
    loop = Loop(tmp_path, logs, new_fail_every=4)  # 25 % of the new version's answers are 500
    try:
        with Load(loop.router.url + "/predict") as load:
            time.sleep(1)
            loop.start(ROLLOUT)
            state = loop.run_until({"Promoted", "RolledBack"}, 60)
            rolled_back_at = time.monotonic()
            time.sleep(1.5)
            loop.tick()
    finally:
        loop.stop()
    assert state["phase"] == "RolledBack", state
    assert state["weight"] == 0 and max(w for _, _, w in loop.timeline) == 20  # never past the first step
    assert state["lastAnalysis"]["failedCheck"] == "maxErrorRatio"
    assert 0.15 < state["lastAnalysis"]["value"] < 0.35
    old = [a for a in load.answers if a.version == "1.0.0"]
    assert old and {a.status for a in old} == {200}  # users of the old version saw no error
    late = [a for a in load.answers if a.sent_at > rolled_back_at + 1.0]
    assert late and {a.version for a in late} == {"1.0.0"}


def test_a_shadow_that_disagrees_is_rolled_back_before_any_live_request(tmp_path, logs):
    # The two upstreams name themselves in their answers ("served_by": "v1" / "v2"): every mirrored
    # answer differs from the primary one in a label, i.e. a decision flip.
    loop = Loop(tmp_path, logs, new_fail_every=0)
    try:
        with Load(loop.router.url + "/predict") as load:
            time.sleep(1)
            loop.start({**ROLLOUT, "shadowSeconds": 30, "failureLimit": 1})
            state = loop.run_until({"Promoted", "RolledBack"}, 60)
            time.sleep(1)
        new_answers = json.loads(http_get(loop.new.url + "/fake/stats")[1])["count"]
    finally:
        loop.stop()
    assert state["phase"] == "RolledBack" and [p for _, p, _ in loop.timeline][:2] == ["Progressing", "Shadowing"]
    assert state["lastAnalysis"]["failedCheck"] == "maxDecisionFlipRatio" and state["lastAnalysis"]["value"] == 1.0
    assert all(w == 0 for _, _, w in loop.timeline)
    assert {a.version for a in load.answers} == {"1.0.0"} and {a.status for a in load.answers} == {200}
    assert new_answers >= 20  # it did answer the mirrored copies
