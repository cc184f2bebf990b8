"""Acceptance of the router against real processes on 127.0.0.1: two `mlserving serve` processes
serving different versions of the fraud model (trained here, small) and `mlserving router`."""

import asyncio
import collections
import json
import random
import subprocess
import sys
import time

import pytest
from router_testkit import (
    Process,
    drive,
    drive_for,
    free_port,
    http_get,
    metric_value,
    metrics,
    start_fake,
    start_router,
    variant,
    wait_for,
    write_raw,
    write_table,
)

pytestmark = pytest.mark.slow

BODY = json.dumps({"features": [0.1 * i for i in range(20)]}).encode()
VERSIONS = {"stable": "1.0.0", "candidate": "2.0.0"}


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """Two small versions of the fraud model, trained in parallel."""
    out = tmp_path_factory.mktemp("models")
    procs = [subprocess.Popen([sys.executable, "-m", "mlserving.cli.main", "train", "--model", "fraud",
                               "--version", version, "--out", str(out), "--seed", str(seed), "--samples", "2000",
                               "--n-estimators", "10", "--max-depth", "4"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for seed, version in enumerate(VERSIONS.values(), start=1)]
    for proc in procs:
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, output
    return out


def start_server(model_dir, version: str, logs, port: int | None = None) -> Process:
    port = port or free_port()
    cmd = [sys.executable, "-m", "mlserving.cli.main", "serve", "--model-path", str(model_dir / "fraud" / version),
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return Process(f"serve-{version}", cmd, port, logs).start(ready_path="/health/ready", timeout=60)


@pytest.fixture(scope="module")
def servers(model_dir, logs):
    started = {name: start_server(model_dir, version, logs) for name, version in VERSIONS.items()}
    yield started
    for server in started.values():
        server.stop()


def table_of(servers, stable: int, candidate: int) -> list[dict]:
    return [variant("stable", "1.0.0", servers["stable"].url, stable),
            variant("candidate", "2.0.0", servers["candidate"].url, candidate)]


def predictions(server: Process) -> float:
    return metric_value(metrics(server), "model_predictions_total", status="success")


def shares(answers) -> dict[str, float]:
    counts = collections.Counter(a.variant for a in answers)
    return {name: 100.0 * counts[name] / len(answers) for name in VERSIONS}


def test_10000_requests_split_90_10_and_headers_match_the_servers_counters(servers, logs, tmp_path):
    table = tmp_path / "routing.json"
    write_table(table, table_of(servers, 90, 10), sticky=None)
    router = start_router(table, logs)
    try:
        before = {name: predictions(s) for name, s in servers.items()}
        answers = asyncio.run(drive(router.url + "/predict", [BODY] * 10_000, concurrency=32))
        after = {name: predictions(s) for name, s in servers.items()}
    finally:
        router.stop()
    assert collections.Counter(a.status for a in answers) == {200: 10_000}
    split = shares(answers)
    assert abs(split["stable"] - 90) <= 1.5 and abs(split["candidate"] - 10) <= 1.5, split
    for a in answers:  # the header names the variant whose model answered
        assert VERSIONS[a.variant] == a.version == json.loads(a.body)["model_version"]
    by_header = collections.Counter(a.variant for a in answers)
    assert {name: after[name] - before[name] for name in VERSIONS} == {n: by_header[n] for n in VERSIONS}
    assert len({a.request_id for a in answers}) == 10_000


def sticky_round(router, keys, repeat=1):
    bodies = [BODY] * (len(keys) * repeat)
    answers = asyncio.run(drive(router.url + "/predict", bodies, concurrency=32,
                                headers=lambda i: {"x-user-id": keys[i % len(keys)]}))
    assert {a.status for a in answers} == {200}
    assignment: dict[str, set] = collections.defaultdict(set)
    for a in answers:
        assignment[a.key].add(a.variant)
    return assignment


def test_sticky_keys_are_stable_move_minimally_and_routers_agree(servers, logs, tmp_path):
    keys = [f"user-{i}" for i in range(1000)]
    table = tmp_path / "routing.json"
    write_table(table, table_of(servers, 90, 10), generation=1)
    first = start_router(table, logs)
    try:
        assignment = sticky_round(first, keys, repeat=5)
        assert all(len(v) == 1 for v in assignment.values()), "a key landed on two variants"
        before = {k: next(iter(v)) for k, v in assignment.items()}
        share = 100.0 * sum(v == "candidate" for v in before.values()) / len(keys)
        assert abs(share - 10) <= 3, share

        write_table(table, table_of(servers, 80, 20), generation=2)
        wait_for(lambda: metric_value(metrics(first), "mlserving_router_table_generation") == 2, 30)
        after = {k: next(iter(v)) for k, v in sticky_round(first, keys).items()}
        moved = collections.Counter((before[k], after[k]) for k in keys if before[k] != after[k])
        assert moved[("candidate", "stable")] == 0
        assert 7 <= 100.0 * moved[("stable", "candidate")] / len(keys) <= 13, moved
        assert abs(100.0 * sum(v == "candidate" for v in after.values()) / len(keys) - 20) <= 3

        second = start_router(table, logs)
        try:
            other = {k: next(iter(v)) for k, v in sticky_round(second, keys).items()}
        finally:
            second.stop()
        assert other == after
    finally:
        first.stop()


def test_weight_change_through_the_file_under_load_drops_nothing(servers, logs, tmp_path):
    table = tmp_path / "routing.json"
    write_table(table, table_of(servers, 100, 0), generation=1)
    router = start_router(table, logs)

    async def scenario():
        load = asyncio.create_task(drive_for(router.url + "/predict", seconds=9.0, clients=4, body=BODY))
        await asyncio.sleep(2.0)
        changed_at = time.monotonic()
        write_table(table, table_of(servers, 0, 100), generation=2)
        # In force once the router reports it (an event, not a guess of how long it takes).
        await asyncio.to_thread(wait_for, lambda: metric_value(metrics(router), "mlserving_router_table_generation")
                                == 2, 30)
        return changed_at, time.monotonic(), await load

    try:
        changed_at, in_force_at, answers = asyncio.run(scenario())
    finally:
        router.stop()
    assert [a for a in answers if a.status != 200] == []
    late = [a for a in answers if a.sent_at > in_force_at]
    assert late and {a.variant for a in late} == {"candidate"}
    early = [a for a in answers if a.sent_at < changed_at]
    assert {a.variant for a in early} == {"stable"}
    switched = min(a.sent_at for a in answers if a.variant == "candidate") - changed_at
    print(f"new table in force {switched:.2f} s after the file changed")


def test_killed_upstream_fails_over_with_json_errors_and_comes_back(servers, model_dir, logs, tmp_path):
    victim = start_server(model_dir, "2.0.0", logs)
    table = tmp_path / "routing.json"
    write_table(table, [variant("stable", "1.0.0", servers["stable"].url, 50),
                        variant("candidate", "2.0.0", victim.url, 50)])
    router = start_router(table, logs, "--timeout", "2")
    timings = {}

    async def scenario():
        # The load runs until 4 s after the victim is back, however long its restart takes.
        stop = asyncio.Event()
        load = asyncio.create_task(drive_for(router.url + "/predict", seconds=120.0, clients=4, body=BODY,
                                             stop=stop))
        await asyncio.sleep(2.0)
        timings["killed"] = time.monotonic()
        victim.kill()
        await asyncio.sleep(2.0)
        await asyncio.to_thread(victim.start, "/health/ready", 60)
        timings["back"] = time.monotonic()
        await asyncio.sleep(4.0)
        stop.set()
        return await load

    try:
        answers = asyncio.run(scenario())
        failovers = metric_value(metrics(router), "mlserving_router_failovers_total",
                                 from_variant="candidate", to_variant="stable")
    finally:
        router.stop()
        victim.stop()
    assert all(a.status != -1 for a in answers), "a request failed without an HTTP answer"
    # The router's deadline is 2 s and the client's 30 s: anything near 30 s would be a hang (the
    # bound leaves a busy machine room; it only has to tell a deadline from a hang).
    assert max(a.seconds for a in answers) < 20.0, "a request hung past the router's timeout"
    errors = [a for a in answers if a.status != 200]
    for a in errors:
        assert a.status in (502, 503, 504)
        assert json.loads(a.body)["variant"] == "candidate" and a.variant == "candidate"
    assert failovers >= 1
    down = [a for a in answers if timings["killed"] + 0.5 < a.sent_at < timings["back"] - 0.5]
    assert down and {a.variant for a in down if a.status == 200} == {"stable"}
    back = [a for a in answers if a.sent_at > timings["back"] + 1.0]
    assert back, "the scenario left no time after the restart"
    assert 20 <= shares([a for a in back if a.status == 200])["candidate"] <= 80
    print(f"{len(answers)} requests, {len(errors)} JSON errors, {failovers:.0f} failovers")


def test_mirror_gets_copies_and_stopping_it_changes_nothing_for_clients(servers, model_dir, logs, tmp_path):
    mirror = start_server(model_dir, "2.0.0", logs)
    table = tmp_path / "routing.json"
    write_table(table, [variant("stable", "1.0.0", servers["stable"].url, 100),
                        variant("shadow", "2.0.0", mirror.url, 0, mirror=True)])
    router = start_router(table, logs)
    try:
        before = predictions(mirror)
        with_mirror = asyncio.run(drive(router.url + "/predict", [BODY] * 2000, concurrency=8))
        wait_for(lambda: predictions(mirror) - before >= 2000 * 0.99, 10, what="mirror copies")
        copies = predictions(mirror) - before
        mirror.stop()
        without_mirror = asyncio.run(drive(router.url + "/predict", [BODY] * 2000, concurrency=8))
        text = metrics(router)
    finally:
        router.stop()
        mirror.stop()
    assert 0.99 <= copies / 2000 <= 1.0
    for run in (with_mirror, without_mirror):
        assert {(a.status, a.variant) for a in run} == {(200, "stable")}
    assert metric_value(text, "mlserving_router_mirror_requests_total", variant="shadow", outcome="ok") >= 1980
    p99 = {name: sorted(a.seconds for a in run)[int(0.99 * len(run))]
           for name, run in (("with", with_mirror), ("without", without_mirror))}
    # Latency figures belong to bench/; this bound only catches a mirror that blocks the primary.
    assert p99["without"] < 3 * p99["with"] + 0.05, p99
    print(f"primary p99 with mirror {p99['with'] * 1e3:.1f} ms, mirror stopped {p99['without'] * 1e3:.1f} ms")


def test_slow_mirror_never_delays_the_primary(servers, logs, tmp_path):
    slow = start_fake("slow-mirror", logs)  # sleeps x-fake-delay seconds; the real server ignores it
    table = tmp_path / "routing.json"
    write_table(table, [variant("stable", "1.0.0", servers["stable"].url, 100),
                        variant("shadow", "9.9.9", slow.url, 0, mirror=True)])
    router = start_router(table, logs, "--mirror-queue", "16")
    try:
        answers = asyncio.run(drive(router.url + "/predict", [BODY] * 300, concurrency=8,
                                    headers=lambda i: {"x-fake-delay": "3"}))
        dropped = metric_value(metrics(router), "mlserving_router_mirror_dropped_total",
                               variant="shadow", reason="queue_full")
    finally:
        router.stop()
        slow.stop()
    assert {(a.status, a.variant) for a in answers} == {(200, "stable")}
    assert max(a.seconds for a in answers) < 2.5  # the mirror holds each copy 3 s
    assert dropped >= 300 - 16 - 16  # queue slots plus the copies the 16 workers hold


INVALID_TABLES = {
    "weights not summing to 100": ({"stable": 60, "candidate": 30}, {},
                                   "the weights of non-mirror variants must sum to 100, got 90"),
    "a mirror with weight": ({}, {"mirror": True}, "a mirror variant must have weight 0, got 10"),
    "duplicate names": ({}, {"name": "stable"}, "duplicate name 'stable'"),
    "a URL that is not http(s)": ({}, {"url": "tcp://127.0.0.1:1"}, "must use http:// or https://"),
    "no live variant": ({"stable": 0, "candidate": 0}, {"mirror": True, "weight": 0}, "no live variant"),
}


def test_each_invalid_table_is_refused_and_the_previous_keeps_serving(servers, logs, tmp_path):
    table = tmp_path / "routing.json"
    write_table(table, table_of(servers, 90, 10), generation=5)
    router = start_router(table, logs)
    try:
        for refused, (label, (weights, candidate_changes, message)) in enumerate(INVALID_TABLES.items(), 1):
            variants = table_of(servers, weights.get("stable", 90), weights.get("candidate", 10))
            variants[1].update(candidate_changes)
            if label == "no live variant":
                variants[0]["mirror"] = True
            write_table(table, variants, generation=5 + refused)
            wait_for(lambda n=refused: metric_value(metrics(router), "mlserving_router_tables_refused_total") == n,
                     5, what=f"refusal of {label}")
            assert message in router.log(), f"{label}: no log line with {message!r}"
            assert metric_value(metrics(router), "mlserving_router_table_generation") == 5
            answers = asyncio.run(drive(router.url + "/predict", [BODY] * 200, concurrency=8))
            assert {a.status for a in answers} == {200}, label
            assert shares(answers)["stable"] > 75, label  # still the 90/10 table
        write_raw(table, "{ not json")
        wait_for(lambda: metric_value(metrics(router), "mlserving_router_tables_refused_total") == 6, 30)
        assert http_get(router.url + "/health/ready")[0] == 200
    finally:
        router.stop()


def tracked_table(servers, new_weight: int, shadow: bool = False) -> str:
    """Format 2: one variant rolling from 1.0.0 (the stable server) to 2.0.0 (the candidate server)."""
    old = {"version": "1.0.0", "url": servers["stable"].url}
    new = {"version": "2.0.0", "url": servers["candidate"].url}
    tracks = ([{**old, "weight": 100}, {**new, "weight": 0, "shadow": True}] if shadow else
              [{**old, "weight": 100 - new_weight}, {**new, "weight": new_weight}])
    return json.dumps({"format": 2, "generation": 3, "stickyHeader": "x-user-id", "variants": [
        {**variant("stable", "1.0.0", servers["stable"].url, 100), "tracks": tracks}]})


def test_a_rolling_variant_splits_by_track_moves_users_old_to_new_and_counts_per_version(servers, logs, tmp_path):
    keys = [f"user-{i}" for i in range(600)]
    table = tmp_path / "routing.json"
    write_raw(table, tracked_table(servers, 20))
    router = start_router(table, logs)
    try:
        def versions():
            answers = asyncio.run(drive(router.url + "/predict", [BODY] * len(keys), concurrency=32,
                                        headers=lambda i: {"x-user-id": keys[i]}))
            assert {a.status for a in answers} == {200}
            for a in answers:  # the answering server's own version, and the variant stays "stable"
                assert a.variant == "stable" and a.version == json.loads(a.body)["model_version"]
            return {a.key: a.version for a in answers}
        at_20 = versions()
        write_raw(table, tracked_table(servers, 50).replace('"generation": 3', '"generation": 4'))
        wait_for(lambda: metric_value(metrics(router), "mlserving_router_table_generation") == 4, 10,
                 what="table generation 4")
        at_50 = versions()
        text = metrics(router)
    finally:
        router.stop()
    assert not [k for k in keys if at_20[k] == "2.0.0" and at_50[k] == "1.0.0"], "a user moved back to 1.0.0"
    assert 0.1 < sum(v == "2.0.0" for v in at_20.values()) / len(keys) < 0.3
    assert 0.4 < sum(v == "2.0.0" for v in at_50.values()) / len(keys) < 0.6
    per_version = {v: metric_value(text, "mlserving_router_requests_total", variant="stable", version=v)
                   for v in ("1.0.0", "2.0.0")}
    assert sum(per_version.values()) == 2 * len(keys)
    assert per_version["2.0.0"] == sum(v == "2.0.0" for v in [*at_20.values(), *at_50.values()])
    assert metric_value(text, "mlserving_router_variant_weight", variant="stable", version="2.0.0") == 50
    assert metric_value(text, "mlserving_router_upstream_latency_seconds_count", version="2.0.0") == per_version["2.0.0"]


def test_a_shadow_track_is_compared_per_request_and_never_answers(servers, logs, tmp_path):
    table = tmp_path / "routing.json"
    write_raw(table, tracked_table(servers, 0, shadow=True))
    router = start_router(table, logs)
    rng = random.Random(7)
    bodies = [json.dumps({"features": [rng.gauss(0, 3) for _ in range(20)]}).encode() for _ in range(300)]
    # What the two versions answer when asked directly: the flips the router must count.
    direct = {name: asyncio.run(drive(servers[name].url + "/predict", bodies, concurrency=16)) for name in VERSIONS}
    expected_flips = sum(json.loads(a.body)["is_fraud"] != json.loads(b.body)["is_fraud"]
                         for a, b in zip(direct["stable"], direct["candidate"], strict=True))
    try:
        before = predictions(servers["candidate"])
        answers = asyncio.run(drive(router.url + "/predict", bodies, concurrency=16))
        assert {(a.status, a.version) for a in answers} == {(200, "1.0.0")}
        wait_for(lambda: sum(metric_value(metrics(router), "mlserving_router_shadow_comparisons_total",
                                          variant="stable", version="2.0.0", outcome=o)
                             for o in ("same", "flip", "value_delta", "error")) == len(bodies), 20,
                 what="every mirrored answer compared")
        text = metrics(router)
        mirrored = predictions(servers["candidate"]) - before
    finally:
        router.stop()
    outcome = {o: metric_value(text, "mlserving_router_shadow_comparisons_total", version="2.0.0", outcome=o)
               for o in ("same", "flip", "value_delta", "error")}
    assert mirrored == len(bodies) and outcome["error"] == 0 and outcome["value_delta"] == 0, outcome
    assert outcome["flip"] == expected_flips and outcome["same"] == len(bodies) - expected_flips, outcome
    assert metric_value(text, "mlserving_router_requests_total", version="2.0.0") == 0
