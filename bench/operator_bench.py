"""Operator benchmark on the local control plane (hack/cluster.sh up) with a real operator process.

    .venv/bin/python bench/operator_bench.py [--applies 50] [--fleet 200] [--example fraud-ab.yaml]

1. Latency: ``--applies`` ModelDeployments created one after another; for each, the time from the
   create call until its status is written for that generation (the operator writes status
   after the last child is applied, so this bounds "all children present" from above); every
   child is then checked to exist. p50 / p95.
   Baseline, same run, same API server: the same children applied directly with server-side
   apply from this process, sequentially, no operator. The ratio is the operator's overhead.
2. Fleet: ``--fleet`` ModelDeployments created at once (8 client threads); time until every one
   has status for its generation and all its children exist. Pods becoming ready is the
   controllers' pace and is not waited for. Baseline: the same children applied directly from
   here with 8 threads.
3. The operator's RSS (VmRSS, and the peak VmHWM) at the end.

Targets (the operator's performance goals): p50 <= 1 s, fleet <= 60 s, RSS <= 150 MB.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import copy
import os
import pathlib
import statistics
import subprocess
import sys
import time
import uuid

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "operator_cluster"))

import yaml
from mlserving.operator.apply import FIELD_MANAGER
from mlserving.operator.children import child_kinds, desired_children
from mlserving.operator.settings import OperatorSettings
from opcluster_kit import (
    MD,
    OperatorProcess,
    api_for,
    children_match,
    create_md,
    load_example,
)

EXTRA_SERVICE_CIDR = """
apiVersion: networking.k8s.io/v1
kind: ServiceCIDR
metadata: {name: mlserving-bench}
spec: {cidrs: [10.1.0.0/20]}
"""


def cluster_env() -> dict[str, str]:
    out = subprocess.run(["bash", str(REPO / "hack" / "cluster.sh"), "env"], capture_output=True, text=True,
                         check=True).stdout
    env = {}
    for line in out.splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export "):].partition("=")
            env[key] = value.strip("'\"").replace("$PATH", os.environ.get("PATH", ""))
    return env


def kubectl(env, *args, input=None) -> str:
    proc = subprocess.run(["kubectl", *args], env=env, input=input, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def status_written(md: dict | None) -> bool:
    if not md:
        return False
    status = md.get("status") or {}
    return status.get("observedGeneration") == md["metadata"]["generation"] and bool(status.get("phase"))


def measure_latency(api, ns: str, template: dict, count: int) -> list[float]:
    times = []
    for i in range(count):
        md = copy.deepcopy(template)
        md["metadata"]["name"] = f"lat{i}"
        started = time.perf_counter()
        create_md(api, ns, md)
        while not status_written(api.get(MD, ns, f"lat{i}")):
            if time.perf_counter() - started > 60:
                raise SystemExit(f"lat{i}: no status after 60 s")
            time.sleep(0.01)
        times.append(time.perf_counter() - started)
        verdict = children_match(api, ns, f"lat{i}")
        if verdict is not True:
            raise SystemExit(f"lat{i}: status written but children differ: {verdict}")
    return times


def measure_baseline(api, ns: str, template: dict, count: int) -> list[float]:
    """The same children, applied straight from here: what the API server alone costs."""
    settings = OperatorSettings.from_env()
    times = []
    for i in range(count):
        md = copy.deepcopy(template)
        md["metadata"].update(name=f"base{i}", namespace=ns, uid=str(uuid.uuid4()), generation=1)
        children = desired_children(md, settings)
        for child in children:  # no owner: nothing may garbage-collect them mid-run
            child["metadata"].pop("ownerReferences", None)
        started = time.perf_counter()
        for child in children:
            api.apply(child, FIELD_MANAGER + "-bench", force=True)
        times.append(time.perf_counter() - started)
    return times


def measure_fleet_baseline(api, ns: str, template: dict, count: int) -> float:
    """The fleet's children applied straight from here, 8 ModelDeployments' worth at a time."""
    settings = OperatorSettings.from_env()
    batches = []
    for i in range(count):
        md = copy.deepcopy(template)
        md["metadata"].update(name=f"fbase{i}", namespace=ns, uid=str(uuid.uuid4()), generation=1)
        children = desired_children(md, settings)
        for child in children:
            child["metadata"].pop("ownerReferences", None)
        batches.append(children)
    started = time.perf_counter()

    def apply_all(children):
        for child in children:
            api.apply(child, FIELD_MANAGER + "-bench", force=True)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(apply_all, batches))
    return time.perf_counter() - started


def measure_fleet(api, ns: str, template: dict, count: int) -> float:
    started = time.perf_counter()

    def create(i):
        md = copy.deepcopy(template)
        md["metadata"]["name"] = f"fleet{i}"
        create_md(api, ns, md)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(count)))
    created = time.perf_counter() - started
    print(f"  created {count} ModelDeployments in {created:.1f}s", flush=True)
    while True:
        done = sum(status_written(md) for md in api.list(MD, ns))
        if done == count:
            break
        if time.perf_counter() - started > 300:
            raise SystemExit(f"fleet: only {done} of {count} have status after 300 s")
        time.sleep(0.5)
    elapsed = time.perf_counter() - started
    # Every child of every ModelDeployment, checked with one list per kind.
    settings = OperatorSettings.from_env()
    have = set()
    for kind in child_kinds():
        if kind.optional:
            continue
        for obj in api.list(kind, ns, "app.kubernetes.io/managed-by=mlserving-operator"):
            have.add((kind.kind, obj["metadata"]["name"]))
    want = set()
    for md in api.list(MD, ns):
        want |= {(c["kind"], c["metadata"]["name"]) for c in desired_children(md, settings)}
    missing = want - have
    if missing:
        raise SystemExit(f"fleet: status written but {len(missing)} children missing, e.g. {sorted(missing)[:5]}")
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--applies", type=int, default=50)
    parser.add_argument("--fleet", type=int, default=200)
    parser.add_argument("--example", default="fraud-ab.yaml", help="ModelDeployment shape from examples/")
    args = parser.parse_args(argv)

    env = {**os.environ, **cluster_env()}
    kubeconfig = pathlib.Path(env["KUBECONFIG"])
    kubectl(env, "apply", "--server-side", "--force-conflicts", "-k", str(REPO / "crds"))
    kubectl(env, "wait", "--for=condition=Established", "crd/modeldeployments.mlserving.io", "--timeout=60s")
    # kwokctl's API server has the default Service range (a /24, ~250 IPs); 200 ModelDeployments
    # need ~600 Services. A ServiceCIDR object extends the range at runtime (GA since 1.33).
    kubectl(env, "apply", "-f", "-", input=EXTRA_SERVICE_CIDR)
    run = uuid.uuid4().hex[:5]
    namespaces = {part: f"bench-{run}-{part}" for part in ("lat", "base", "fleet", "system")}
    for ns in namespaces.values():
        kubectl(env, "create", "namespace", ns)
    api = api_for(kubeconfig)
    template = load_example(args.example)
    logs = pathlib.Path(os.environ.get("TMPDIR", "/tmp"))
    op = OperatorProcess(kubeconfig, [namespaces["lat"], namespaces["fleet"]], namespaces["system"],
                         "mlserving-operator", f"bench-{run}", logs, bin_dir=pathlib.Path(env["PATH"].split(":")[0]))
    op.start()
    try:
        op.wait_leader()
        n_children = len(desired_children({**copy.deepcopy(template), "metadata": {
            "name": "x", "namespace": "x", "uid": "x", "generation": 1}}, OperatorSettings.from_env()))
        print(f"shape: {args.example} ({n_children} children per ModelDeployment); operator log {op.log_path}")

        baseline = measure_baseline(api, namespaces["base"], template, args.applies)
        latency = measure_latency(api, namespaces["lat"], template, args.applies)
        b50, p50, p95 = statistics.median(baseline), statistics.median(latency), percentile(latency, 0.95)
        print(f"apply -> all children + status, {args.applies} applies: p50 {p50 * 1000:.0f} ms, "
              f"p95 {p95 * 1000:.0f} ms (target p50 <= 1000 ms)")
        print(f"baseline (same children applied directly, no operator): p50 {b50 * 1000:.0f} ms; "
              f"operator/baseline p50 ratio {p50 / b50:.2f}")

        fleet = measure_fleet(api, namespaces["fleet"], template, args.fleet)
        print(f"{args.fleet} ModelDeployments at once -> all children + status: {fleet:.1f} s (target <= 60 s)")
        fleet_base = measure_fleet_baseline(api, namespaces["base"], template, args.fleet)
        print(f"baseline (the same children applied directly, 8 threads): {fleet_base:.1f} s; "
              f"operator/baseline ratio {fleet / fleet_base:.2f}")
        time.sleep(5)  # let the child-event aftermath settle before reading memory
        with open(f"/proc/{op.proc.pid}/status") as fh:
            mem = {k: int(v.split()[0]) / 1024 for k, v in (line.split(":", 1) for line in fh)
                   if k in ("VmRSS", "VmHWM")}
        print(f"operator RSS at the end: {mem['VmRSS']:.0f} MB (peak {mem['VmHWM']:.0f} MB; target <= 150 MB)")
        print(yaml.safe_dump({"p50_s": round(p50, 3), "p95_s": round(p95, 3), "baseline_p50_s": round(b50, 3),
                              "fleet_s": round(fleet, 1),
                              "fleet_baseline_s": round(fleet_base, 1), "rss_mb": round(mem["VmRSS"]),
                              "peak_rss_mb": round(mem["VmHWM"])}, sort_keys=False).strip())
    finally:
        op.stop()
        for ns in namespaces.values():
            subprocess.run(["kubectl", "delete", "namespace", ns, "--wait=false"], env=env, capture_output=True,
                           check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
