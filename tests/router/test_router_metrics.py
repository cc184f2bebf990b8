"""The router's metrics: version labels, configured weights, and the metrics port."""

from __future__ import annotations

import asyncio
import time

import pytest
from router_testkit import (
    drive,
    free_port,
    http_get,
    metric_value,
    metrics,
    start_fake,
    start_router,
    variant,
    write_table,
)


@pytest.fixture
def fakes(tmp_path):
    started = [start_fake("alpha", tmp_path), start_fake("beta", tmp_path)]
    yield started
    for fake in started:
        fake.stop()


def test_series_carry_version_and_the_configured_weights(tmp_path, fakes):
    alpha, beta = fakes
    table = tmp_path / "routing.json"
    write_table(table, [variant("alpha", "1.0.0", alpha.url, 70), variant("beta", "2.0.0", beta.url, 30),
                        variant("shadow", "3.0.0", beta.url, 0, mirror=True)])
    metrics_port = free_port()
    router = start_router(table, tmp_path, "--metrics-port", str(metrics_port))
    try:
        answers = asyncio.run(drive(router.url + "/predict", [b'{"features": [1.0]}'] * 40, concurrency=4))
        assert [a.status for a in answers] == [200] * 40
        status, body = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200
        text = body.decode()
        served = (metric_value(text, "mlserving_router_requests_total", variant="alpha", version="1.0.0")
                  + metric_value(text, "mlserving_router_requests_total", variant="beta", version="2.0.0"))
        assert served == 40
        assert metric_value(text, "mlserving_router_upstream_latency_seconds_count", version="1.0.0") + \
            metric_value(text, "mlserving_router_upstream_latency_seconds_count", version="2.0.0") == 40
        weights = {(v, ver): metric_value(text, "mlserving_router_variant_weight", variant=v, version=ver)
                   for v, ver in (("alpha", "1.0.0"), ("beta", "2.0.0"), ("shadow", "3.0.0"))}
        assert weights == {("alpha", "1.0.0"): 70, ("beta", "2.0.0"): 30, ("shadow", "3.0.0"): 0}
        assert 'mlserving_router_variant_weight{variant="shadow",version="3.0.0"}' in text
        assert http_get(f"http://127.0.0.1:{metrics_port}/predict")[0] == 404

        # A new table replaces the weights: the old version's series goes away.
        write_table(table, [variant("alpha", "1.1.0", alpha.url, 100)], generation=2)
        deadline = time.monotonic() + 20
        while metric_value(metrics(router), "mlserving_router_table_generation") != 2:
            assert time.monotonic() < deadline, router.log()
            time.sleep(0.1)
        text = metrics(router)
        assert metric_value(text, "mlserving_router_variant_weight", variant="alpha", version="1.1.0") == 100
        assert 'version="1.0.0"' not in "\n".join(
            line for line in text.splitlines() if line.startswith("mlserving_router_variant_weight"))
    finally:
        router.stop()


def test_metrics_port_equal_to_the_serving_port_is_refused(tmp_path):
    from mlserving.cli.main import main

    table = tmp_path / "routing.json"
    write_table(table, [variant("alpha", "1.0.0", "http://127.0.0.1:1", 100)])
    assert main(["router", "--config", str(table), "--port", "8123", "--metrics-port", "8123"]) == 2
