"""The e2e suite's load checks rehearsed on 127.0.0.1, without a cluster.

Two real ``mlserving serve`` processes (fraud 1.0.0 and 2.0.0, small models trained here), a
real ``mlserving router --config FILE`` in front of them, and tests/e2e/loadgen.py as the client,
exactly as the in-cluster Job runs it. This proves the load generator and the suite's share
arithmetic against the real router's headers and the real servers' bodies; the cluster-only
parts (operator, Services, rollouts) are what tests/e2e/test_ab.py adds.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.request

import loadgen
import pytest

pytestmark = pytest.mark.slow

MLSERVING = pathlib.Path(sys.executable).parent / "mlserving"
PAYLOAD = json.dumps({"features": [0.1] * 20})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, log: pathlib.Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{url}: process exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/health/ready", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url}: not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def write_table(path: pathlib.Path, generation: int, weights: dict[str, int], urls: dict[str, str]) -> None:
    versions = {"stable": "1.0.0", "candidate": "2.0.0"}
    table = {"generation": generation, "stickyHeader": None,
             "variants": [{"name": n, "version": versions[n], "url": urls[n], "weight": w, "mirror": False}
                          for n, w in weights.items()]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(table))
    tmp.replace(path)  # atomic: the router never reads half a table


@pytest.fixture(scope="module")
def router_url(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rehearsal")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    procs: list[subprocess.Popen] = []
    try:
        urls = {}
        for name, version, seed in (("stable", "1.0.0", 1), ("candidate", "2.0.0", 2)):
            subprocess.run([MLSERVING, "train", "--model", "fraud", "--version", version, "--seed", str(seed),
                            "--samples", "1000", "--n-estimators", "10", "--out", tmp / "models"],
                           check=True, capture_output=True, timeout=300, env=env)
            port = free_port()
            log = tmp / f"{name}.log"
            proc = subprocess.Popen([MLSERVING, "serve", "--model-path", tmp / "models" / "fraud" / version,
                                     "--host", "127.0.0.1", "--port", str(port)],
                                    stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
            procs.append(proc)
            urls[name] = f"http://127.0.0.1:{port}"
            wait_ready(urls[name], proc, log)
        table = tmp / "routing.json"
        write_table(table, 1, {"stable": 90, "candidate": 10}, urls)
        port = free_port()
        log = tmp / "router.log"
        proc = subprocess.Popen([MLSERVING, "router", "--config", table, "--host", "127.0.0.1", "--port", str(port)],
                                stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc, log)
        yield url, table, urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def loadgen_cmd(url: str, *args: str) -> list[str]:
    return [sys.executable, loadgen.__file__, "--url", url + "/predict", "--payload", PAYLOAD, *args]


def test_2000_predictions_through_the_router_split_by_weight(router_url):
    url, _, _ = router_url
    proc = subprocess.run(loadgen_cmd(url, "--requests", "2000", "--duration", "120", "--rate", "500"),
                          capture_output=True, text=True, timeout=180, check=False)
    result = loadgen.parse_result(proc.stdout)
    assert result["failed"] == 0, result["errors"]
    assert result["ok"] == 2000
    assert abs(100 * result["by_variant"]["candidate"] / 2000 - 10) <= 3, result["by_variant"]
    # header from the router's table, body from the server that answered: they agree
    for variant, header_version, body_version, _ in result["answers"]:
        assert header_version == body_version == {"stable": "1.0.0", "candidate": "2.0.0"}[variant]


def test_weight_change_under_load_is_seen_by_the_share_arithmetic(router_url):
    url, table, urls = router_url
    proc = subprocess.Popen(loadgen_cmd(url, "--duration", "16", "--rate", "150"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("LOADGEN_STARTED "), first + proc.stderr.read()
        time.sleep(3)
        write_table(table, 2, {"stable": 50, "candidate": 50}, urls)
        changed = time.time()
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    result = loadgen.parse_result(out)
    assert result["failed"] == 0, result["errors"]
    before, n_before = loadgen.share(result, "candidate", until=changed - 1)
    after, n_after = loadgen.share(result, "candidate", since=changed + 5)  # the router's 5 s promise
    assert n_before >= 150 and n_after >= 300, (n_before, n_after)
    assert abs(before - 0.10) <= 0.06, before
    assert abs(after - 0.50) <= 0.07, after
