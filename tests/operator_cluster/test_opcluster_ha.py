"""Issue 4 acceptance 9: crash consistency and leader election, with operators of their own."""

import time

import pytest
from opcluster_kit import (
    LEASE,
    REPO,
    SERVICE,
    OperatorProcess,
    children_match,
    create_md,
    events_for,
    expected_children,
    live_children,
    md_status,
    patch_md,
    replicasets_of,
    routing_table,
    wait_for,
)

pytestmark = pytest.mark.cluster


def eight_variants(name: str) -> dict:
    """A large ModelDeployment (about 25 children), so a kill lands in the middle of applying it."""
    weights = [30, 10, 10, 10, 10, 10, 10, 10]
    return {"apiVersion": "mlserving.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": name},
            "spec": {"model": "fraud",
                     "variants": [{"name": f"v{i}", "version": f"1.0.{i}", "weight": w, "replicas": 1}
                                  for i, w in enumerate(weights)]}}


def lease_holder(api, ns: str, name: str) -> str:
    lease = api.get(LEASE, ns, name)
    return ((lease or {}).get("spec") or {}).get("holderIdentity") or ""


def test_operator_killed_mid_reconcile_converges_without_duplicates(crd, api, fresh_ns, log_dir, run_id):
    ns = fresh_ns("restart")
    op = OperatorProcess(crd.kubeconfig, [ns], lease_namespace=ns, lease_name="op-restart",
                         identity=f"restart-{run_id}", log_dir=log_dir).start()
    try:
        op.wait_leader()
        killed_midway = []
        for attempt in range(3):
            name = f"big{attempt}"
            create_md(api, ns, eight_variants(name))
            # The Services are applied before the Deployments: kill as soon as the first shows up.
            selector = f"app.kubernetes.io/instance={name}"
            wait_for("the first Service", lambda s=selector: api.list(SERVICE, ns, s), 30, interval=0.02)
            op.kill()
            total = len(expected_children(api, ns, name))
            present = len(live_children(api, ns, name))
            print(f"attempt {attempt}: killed with {present} of {total} children applied")
            killed_midway.append(0 < present < total)
            op.start()
            op.wait_leader()  # same identity: re-acquires its own Lease at once
            wait_for(f"{name} to converge", lambda n=name: children_match(api, ns, n) is True, 60)
            if killed_midway[-1]:
                break
        assert any(killed_midway), "the operator finished every apply before it could be killed"

        for attempt_name in [f"big{i}" for i in range(len(killed_midway))]:
            wait_for(f"{attempt_name} Ready",
                     lambda n=attempt_name: md_status(api, ns, n).get("phase") == "Ready", 120, interval=1)
            children = live_children(api, ns, attempt_name)
            assert sorted(children) == expected_children(api, ns, attempt_name)
            for (kind, child), obj in children.items():
                assert len(obj["metadata"]["ownerReferences"]) == 1, (kind, child)
                if kind == "Deployment":
                    assert len(replicasets_of(api, ns, obj)) == 1, f"{child} has duplicate ReplicaSets"
    finally:
        op.stop()


def test_two_instances_only_the_lease_holder_reconciles(crd, api, fresh_ns, log_dir, run_id):
    ns = fresh_ns("ha")
    lease = "op-ha"
    a = OperatorProcess(crd.kubeconfig, [ns], ns, lease, f"ha-a-{run_id}", log_dir).start()
    b = OperatorProcess(crd.kubeconfig, [ns], ns, lease, f"ha-b-{run_id}", log_dir)
    try:
        a.wait_leader()
        b.start()
        wait_for("b to report standby", lambda: b.health() == "standby", 30)
        assert lease_holder(api, ns, lease) == a.identity

        crd.kubectl("apply", "-n", ns, "-f", str(REPO / "examples" / "fraud-ab.yaml"))
        wait_for("children", lambda: children_match(api, ns, "fraud") is True, 60)
        crd.kubectl("wait", "--for=condition=Ready", "md/fraud", "-n", ns, "--timeout=120s", timeout=150)
        events = wait_for("the Ready event", lambda: events_for(api, ns, "fraud"), 15)
        assert {e.get("reportingInstance") for e in events} == {a.identity}, events
        assert b.health() == "standby" and "starting to reconcile" not in b.log(), b.log_tail()
        assert lease_holder(api, ns, lease) == a.identity

        # The leader dies without releasing the Lease: b takes over once it has expired.
        a.kill()
        started = time.monotonic()
        wait_for("b to take the lease", lambda: lease_holder(api, ns, lease) == b.identity, 30)
        print(f"standby took over after {time.monotonic() - started:.1f}s")
        b.wait_leader()

        def fifty_fifty(spec):
            for variant in spec["variants"]:
                variant["weight"] = 50
        generation = patch_md(api, ns, "fraud", fifty_fifty)["metadata"]["generation"]
        wait_for("b to write the new routing table",
                 lambda: routing_table(api, ns, "fraud").get("generation") == generation, 20)

        # a comes back as a standby, and stays one.
        a.start()
        wait_for("a to report standby", lambda: a.health() == "standby", 30)
        assert lease_holder(api, ns, lease) == b.identity

        # A holder that finds someone else in the Lease exits at once, so it writes nothing more.
        record = api.get(LEASE, ns, lease)
        record["spec"]["holderIdentity"] = "intruder"
        api.replace(LEASE, ns, lease, record)
        wait_for("b to exit after losing the lease", lambda: b.proc.poll() is not None, 15)
        assert b.proc.returncode == 70, b.log_tail()
        assert "leadership lost" in b.log()
    finally:
        a.stop()
        b.stop()
