"""Fixtures of the operator acceptance tests: CRD installed, one shared operator process.

The shared operator watches a pool of namespaces created up front (kopf is run with exact
namespaces, no namespace scanning), so tests that start operators of their own (leader
election, restart, the ServiceAccount kubeconfig) use namespaces nobody else reconciles.
"""

from __future__ import annotations

import pathlib
import uuid

import pytest
from crd_kit import wait_crd_served
from opcluster_kit import OperatorProcess, api_for

REPO = pathlib.Path(__file__).resolve().parents[2]
POOL_SIZE = 20


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:5]


@pytest.fixture(scope="session")
def crd(cluster):
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(REPO / "crds"))
    wait_crd_served(cluster)
    return cluster


@pytest.fixture(scope="session")
def api(cluster):
    return api_for(cluster.kubeconfig)


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("operator-logs")


class NamespacePool:
    def __init__(self, names: list[str]):
        self.free = list(names)

    def take(self) -> str:
        if not self.free:
            raise RuntimeError(f"namespace pool exhausted: raise POOL_SIZE ({POOL_SIZE}) in {__file__}")
        return self.free.pop(0)


@pytest.fixture(scope="session")
def shared_operator(crd, run_id, log_dir):
    cluster = crd
    names = [f"mlo-{run_id}-{i}" for i in range(POOL_SIZE)]
    system = f"mlo-{run_id}-system"
    for ns in [system, *names]:
        cluster.kubectl("create", "namespace", ns)
    op = OperatorProcess(cluster.kubeconfig, names, lease_namespace=system, lease_name="mlserving-operator",
                         identity=f"shared-{run_id}", log_dir=log_dir).start()
    try:
        op.wait_leader()
    except Exception:
        op.stop()
        raise
    op.pool = NamespacePool(names)
    yield op
    code = op.stop()
    print(f"\nshared operator log: {op.log_path} (exit {code})")
    for ns in [system, *names]:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture
def op_ns(shared_operator) -> str:
    """A namespace the shared operator watches, for this test alone."""
    return shared_operator.pool.take()


@pytest.fixture
def fresh_ns(crd, run_id):
    """Namespaces no shared operator watches (for tests that run operators of their own)."""
    made = []

    def make(suffix: str, labels: dict | None = None) -> str:
        name = f"mlx-{run_id}-{suffix}"
        crd.kubectl("create", "namespace", name)
        if labels:
            crd.kubectl("label", "namespace", name, *[f"{k}={v}" for k, v in labels.items()])
        made.append(name)
        return name

    yield make
    for name in made:
        crd.kubectl("delete", "namespace", name, "--wait=false", check=False)
