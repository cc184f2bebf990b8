"""What the chaos cases share: one constant load, the faults, the children check, the report.

The load is ONE Job (tests/e2e/loadgen.py with ``--progress``) running for the whole module
against the stable Service, so every fault happens under traffic that was already flowing; each
case judges the seconds of its own window from the Job's per-second lines. The node and the test
share one clock (the load pod runs on this machine), so the windows line up.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import subprocess
import time

import loadgen
import pytest
from providers.base import REPO_ROOT
from test_ab import (
    E2E_RESOURCES,
    PAYLOAD,
    install_operator,
    load_job,
    loadgen_configmap,
    restricted_namespace,
)

NAMESPACE = "mlserving-chaos"
MD = "fraud"
LOAD_JOB = "chaos-load"
LOAD_RATE = 20.0            # requests per second, all load workers together
REQUEST_TIMEOUT_S = 5.0     # a request stuck longer than this is a failure of the window it started in
REPORT = pathlib.Path(os.environ.get("MLSERVING_CHAOS_REPORT", REPO_ROOT / "build" / "chaos-report.json"))
OPERATOR_NAMESPACE = "mlserving-system"
LEASE = "mlserving-operator"
written_this_session = False  # the conftest prints the report at the end of a session that wrote it
CHILD_KINDS = ("deployments,services,configmaps,serviceaccounts,roles,rolebindings,horizontalpodautoscalers,"
               "poddisruptionbudgets,networkpolicies")


def chaos_md() -> dict:
    """The A/B example (90/10) with two fixed replicas per variant: an HPA adding pods under the
    load would change what a case kills and what it waits for."""
    import yaml

    md = yaml.safe_load((REPO_ROOT / "examples" / "fraud-ab.yaml").read_text())
    md["metadata"] = {"name": MD, "namespace": NAMESPACE}
    md["spec"].pop("autoscaling", None)
    md["spec"]["resources"] = E2E_RESOURCES
    for variant in md["spec"]["variants"]:
        variant["replicas"] = 2
    return md


class Case:
    """One fault's record in the report; ``check`` collects broken expectations, ``close`` asserts."""

    def __init__(self, report: Report, name: str, fault: str, expectation: str):
        self.report = report
        self.entry = {"case": name, "fault": fault, "expectation": expectation, "started": _now_iso()}
        self.problems: list[str] = []
        self._t0 = time.monotonic()
        # in the report from the start: a case stopped by a failed wait stays there, unfinished
        self.entry.update(passed=False, problems=["did not finish (see the test's failure)"])
        report.add(self.entry)

    def record(self, **fields) -> None:
        self.entry.update(fields)

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)

    def close(self) -> None:
        self.entry["seconds"] = round(time.monotonic() - self._t0, 1)
        self.entry["passed"] = not self.problems
        self.entry["problems"] = self.problems
        self.report.write()
        assert not self.problems, json.dumps(self.entry, indent=2)


class Report:
    def __init__(self, provider: str):
        self.data = {"date": _now_iso(), "provider": provider, "load_rate_rps": LOAD_RATE,
                     "request_timeout_s": REQUEST_TIMEOUT_S, "cases": []}

    def add(self, entry: dict) -> None:
        self.data["cases"].append(entry)
        self.write()

    def write(self) -> None:
        global written_this_session
        written_this_session = True
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps(self.data, indent=2) + "\n")


def _now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Chaos:
    """The cluster, the ModelDeployment under load, and the faults a case can inject."""

    def __init__(self, cluster, report: Report):
        self.k = cluster
        self.report = report

    # --- set-up ------------------------------------------------------------------------------
    def install(self) -> None:
        install_operator(self.k)
        self.k.apply([restricted_namespace(NAMESPACE), loadgen_configmap(NAMESPACE)])
        self.k.apply(chaos_md())
        self.wait_ready()
        url = f"http://{MD}.{NAMESPACE}.svc.cluster.local/predict"
        args = ["--url", url, "--payload", json.dumps(PAYLOAD), "--duration", "900", "--rate", str(LOAD_RATE),
                "--concurrency", "4", "--timeout", str(REQUEST_TIMEOUT_S), "--progress"]
        self.k.apply(load_job(LOAD_JOB, args, deadline=1080, namespace=NAMESPACE))
        self._wait_load_started()

    def _wait_load_started(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "LOADGEN_STARTED " in self.load_log():
                return
            time.sleep(1)
        pytest.fail(f"the load Job gave no answer within {timeout:.0f} s:\n{self.load_log()}")

    def remove(self) -> None:
        self.k.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", "--timeout=180s",
                       timeout=200, check=False)

    # --- reading state -----------------------------------------------------------------------
    def md(self) -> dict:
        return self.k.get_json(f"modeldeployment/{MD}", namespace=NAMESPACE)

    def wait_ready(self, timeout: int = 300) -> None:
        self.k.kubectl("wait", "--for=condition=Ready", f"modeldeployment/{MD}", "-n", NAMESPACE,
                       f"--timeout={timeout}s", timeout=timeout + 20)

    def pods(self, variant: str) -> list[dict]:
        return self.k.get_json("pods", "-l", f"mlserving.io/model-deployment={MD},mlserving.io/variant={variant}",
                               namespace=NAMESPACE)["items"]

    def routing_json(self) -> str | None:
        out = self.k.kubectl("get", "configmap", f"{MD}-routing", "-n", NAMESPACE, "-o", "json", check=False,
                             timeout=20)
        try:
            return (json.loads(out).get("data") or {}).get("routing.json")
        except ValueError:
            return None  # not found (kubectl printed an error) or the API server is away

    def routing_weights(self) -> dict[str, int] | None:
        raw = self.routing_json()
        try:
            return {v["name"]: v["weight"] for v in json.loads(raw)["variants"]} if raw else None
        except (ValueError, KeyError, TypeError):
            return None

    def children(self) -> dict[str, list[dict]]:
        """Every object labelled as this ModelDeployment's child, by ``Kind/name``."""
        items = self.k.get_json(CHILD_KINDS, "-l", f"mlserving.io/model-deployment={MD}",
                                namespace=NAMESPACE)["items"]
        found: dict[str, list[dict]] = {}
        for obj in items:
            found.setdefault(f"{obj['kind']}/{obj['metadata']['name']}", []).append(obj)
        return found

    def children_problems(self, expected: set[str]) -> list[str]:
        """Duplicates, orphans (no controller reference to this ModelDeployment) and missing or extra children."""
        uid = self.md()["metadata"]["uid"]
        children = self.children()
        problems = [f"{key} appears {len(objs)} times" for key, objs in children.items() if len(objs) > 1]
        for key, objs in children.items():
            refs = [r for r in objs[0]["metadata"].get("ownerReferences", []) if r.get("controller")]
            if [r.get("uid") for r in refs] != [uid]:
                problems.append(f"{key} is not controlled by the ModelDeployment (controller refs {refs})")
        if set(children) != expected:
            problems.append(f"children changed: missing {sorted(expected - set(children))}, "
                            f"extra {sorted(set(children) - expected)}")
        return problems

    def settled_problems(self) -> list[str]:
        """Anything that says the last spec was not completely applied."""
        md = self.md()
        status = md.get("status") or {}
        conditions = {c["type"]: c for c in status.get("conditions", [])}
        problems = []
        if status.get("observedGeneration") != md["metadata"]["generation"]:
            problems.append(f"observedGeneration {status.get('observedGeneration')} != generation "
                            f"{md['metadata']['generation']}")
        for kind in ("Ready", "ChildrenApplied"):
            if kind in conditions and conditions[kind].get("status") != "True":
                problems.append(f"condition {kind}: {conditions[kind]}")
        return problems

    def operator_leader(self) -> str:
        lease = self.k.get_json(f"lease/{LEASE}", namespace=OPERATOR_NAMESPACE)
        return lease["spec"]["holderIdentity"]

    # --- waiting -----------------------------------------------------------------------------
    @staticmethod
    def wait_for(what: str, condition, timeout: float, interval: float = 0.5) -> float:
        """Seconds until ``condition()`` is truthy (exceptions count as not yet); fails after ``timeout``."""
        start = time.monotonic()
        last = None
        while time.monotonic() - start < timeout:
            try:
                if condition():
                    return round(time.monotonic() - start, 1)
            except Exception as exc:  # noqa: BLE001 - an API server away or an object not there yet
                last = exc
            time.sleep(interval)
        pytest.fail(f"{what}: not within {timeout:.0f} s" + (f" (last error: {last})" if last else ""))

    # --- the load ----------------------------------------------------------------------------
    def load_log(self) -> str:
        return self.k.kubectl("logs", f"job/{LOAD_JOB}", "-n", NAMESPACE, check=False, timeout=30)

    def load_between(self, start: float, end: float) -> dict:
        """Answers and failures of the load from ``start`` to ``end`` (epoch seconds).

        Waits until the load has reported ``REQUEST_TIMEOUT_S`` past ``end``: a request sent
        in the window and hanging fails at the latest then, and is counted.
        """
        first, last = int(start), int(end + REQUEST_TIMEOUT_S) + 1
        deadline = time.monotonic() + REQUEST_TIMEOUT_S + 60
        while True:
            seconds = loadgen.parse_seconds(self.load_log())
            if seconds and max(seconds) >= last or time.monotonic() > deadline:
                break
            time.sleep(1)
        window = [seconds[t] for t in range(first, last + 1) if t in seconds]
        ok = sum(s["ok"] for s in window)
        failed = sum(s["failed"] for s in window)
        errors = [e for s in window for e in s["errors"]][:10]
        reported = bool(seconds) and max(seconds) >= last
        expected = LOAD_RATE * (last - first + 1)
        return {"window_s": last - first + 1, "requests": ok + failed, "ok": ok, "failed": failed,
                "errors": errors, "load_reported": reported, "answered_share": round(ok / expected, 2)}

    def check_load(self, case: Case, load: dict) -> None:
        """The promise every case shares: 0 failed requests, and the load really flowed."""
        case.record(load=load)
        case.check(load["load_reported"], "the load Job stopped reporting (stalled or died)")
        case.check(load["failed"] == 0, f"{load['failed']} failed client requests: {load['errors']}")
        # paced at LOAD_RATE; well under it means requests hung (a stall is an outage too)
        case.check(load["answered_share"] >= 0.6, f"only {load['answered_share']:.0%} of the paced load answered")

    # --- faults ------------------------------------------------------------------------------
    def signal_container(self, pod: dict, signal: str) -> None:
        """Send ``signal`` to the pod's main container process through the node's containerd (a
        real ``kill``, not an API call: the kubelet only learns of it when the process is gone)."""
        if self.k.provider.name != "local":
            pytest.skip(f"signals a container through the real node's containerd; provider {self.k.provider.name}")
        statuses = {c["name"]: c for c in pod["status"].get("containerStatuses", [])}
        container_id = statuses[main_container(pod)]["containerID"].split("://", 1)[1]
        subprocess.run(["ctr", "--address", self.k.provider.env["CONTAINERD_SOCK"], "-n", "k8s.io", "tasks", "kill",
                        "--signal", signal, container_id], check=True, capture_output=True, text=True, timeout=30)

    def restart_daemon(self, name: str, down_seconds: float) -> None:
        if self.k.provider.name != "local":
            pytest.skip(f"restarts a control-plane process of the real node; provider {self.k.provider.name}")
        subprocess.run(["bash", str(REPO_ROOT / "hack" / "node" / "restart-daemon.sh"), name, str(down_seconds)],
                       check=True, capture_output=True, text=True, timeout=300)


def main_container(pod: dict) -> str:
    return pod["spec"]["containers"][0]["name"]


def container_status(pod: dict) -> dict:
    return next((c for c in pod["status"].get("containerStatuses", []) if c["name"] == main_container(pod)), {})


def restarts(pod: dict) -> int:
    return container_status(pod).get("restartCount", 0)


def ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
