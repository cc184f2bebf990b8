"""The ConfigMap source against a real API server (the shared ``cluster`` fixture)."""

import asyncio
import json
import sys

import pytest
from router_testkit import (
    Process,
    drive,
    free_port,
    http_get,
    metric_value,
    metrics,
    start_fake,
    variant,
    wait_for,
)

pytestmark = pytest.mark.cluster


def configmap(namespace: str, variants: list[dict] | None, generation: int) -> dict:
    data = {} if variants is None else {
        "routing.json": json.dumps({"generation": generation, "stickyHeader": None, "variants": variants})}
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "fraud-routing", "namespace": namespace}, "data": data}


def test_router_follows_the_configmap(cluster, k8s_namespace, tmp_path):
    a, b = start_fake("cm-a", tmp_path), start_fake("cm-b", tmp_path)
    port = free_port()
    cmd = [sys.executable, "-m", "mlserving.cli.main", "router", "--configmap", f"{k8s_namespace}/fraud-routing",
           "--kubeconfig", str(cluster.kubeconfig), "--host", "127.0.0.1", "--port", str(port)]
    router = Process("router-cm", cmd, port, tmp_path).start(ready_path="/health/live")

    def served_by():
        answers = asyncio.run(drive(router.url + "/predict", [b"{}"] * 40, concurrency=4))
        assert {a.status for a in answers} == {200}
        return {a.variant for a in answers}

    def generation():
        return metric_value(metrics(router), "mlserving_router_table_generation")

    try:
        assert http_get(router.url + "/health/ready")[0] == 503  # no ConfigMap yet
        cluster.apply(configmap(k8s_namespace, [variant("alpha", "1.0.0", a.url, 100),
                                                variant("beta", "2.0.0", b.url, 0)], 1))
        wait_for(lambda: http_get(router.url + "/health/ready")[0] == 200, 5, what="ready from the ConfigMap")
        assert served_by() == {"alpha"}

        cluster.apply(configmap(k8s_namespace, [variant("alpha", "1.0.0", a.url, 0),
                                                variant("beta", "2.0.0", b.url, 100)], 2))
        wait_for(lambda: generation() == 2, 5, what="generation 2 in force")
        assert served_by() == {"beta"}

        cluster.apply(configmap(k8s_namespace, [variant("alpha", "1.0.0", a.url, 70)], 3))
        wait_for(lambda: metric_value(metrics(router), "mlserving_router_tables_refused_total") == 1, 5)
        cluster.apply(configmap(k8s_namespace, None, 4))
        wait_for(lambda: metric_value(metrics(router), "mlserving_router_tables_refused_total") == 2, 5)
        assert generation() == 2 and served_by() == {"beta"}
    finally:
        router.stop()
        a.stop()
        b.stop()
    log = router.log()
    assert "must sum to 100, got 70" in log and "key routing.json missing" in log
