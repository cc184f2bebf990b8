"""Selection: the bucket function is the documented one, and layouts move only the keys they must."""

import collections
import subprocess
import sys

import pytest
from mlserving.server.router.selection import BUCKETS, Selector, sticky_bucket
from mlserving.server.router.table import RoutingTable, Variant


def table(*weights, mirror_last=False, sticky="x-user-id"):
    variants = [Variant(f"v{i}", f"{i}.0.0", f"http://v{i}", w, False) for i, w in enumerate(weights)]
    if mirror_last:
        variants.append(Variant("shadow", "9.0.0", "http://shadow", 0, True))
    return RoutingTable(generation=1, sticky_header=sticky, variants=tuple(variants))


# Contract vectors, also printed in docs/api.md so any other implementation can check itself:
# bucket = int.from_bytes(sha256(key)[:8], "big") % 10000.
@pytest.mark.parametrize("key, bucket", [(b"user-1", 2594), (b"user-2", 8987), (b"alice", 207)])
def test_sticky_bucket_matches_the_documented_vectors(key, bucket):
    assert sticky_bucket(key) == bucket


def test_buckets_are_laid_out_over_live_variants_in_table_order():
    s = Selector(table(90, 10))
    assert [s.for_bucket(b).name for b in (0, 8999, 9000, 9999)] == ["v0", "v0", "v1", "v1"]
    s = Selector(table(0, 30, 70, mirror_last=True))
    assert [v.name for v in s.live] == ["v1", "v2"]
    assert [s.for_bucket(b).name for b in (0, 2999, 3000, 9999)] == ["v1", "v1", "v2", "v2"]


def test_sticky_key_always_picks_the_same_variant():
    s = Selector(table(50, 50))
    for i in range(200):
        key = f"user-{i}".encode()
        assert len({s.pick(key).name for _ in range(5)}) == 1


def test_random_picks_follow_the_weights():
    s = Selector(table(90, 10))
    counts = collections.Counter(s.pick().name for _ in range(100_000))
    assert abs(counts["v0"] / 100_000 - 0.90) < 0.006  # 6 standard deviations


def test_weight_zero_and_mirror_variants_never_get_primary_traffic():
    s = Selector(table(100, 0, mirror_last=True))
    assert {s.pick().name for _ in range(2000)} == {"v0"}
    assert {s.pick(f"k{i}".encode()).name for i in range(2000)} == {"v0"}


def test_moving_90_10_to_80_20_moves_only_boundary_keys_and_none_back_to_stable():
    before, after = Selector(table(90, 10)), Selector(table(80, 20))
    keys = [f"user-{i}".encode() for i in range(20_000)]
    moves = collections.Counter((before.pick(k).name, after.pick(k).name) for k in keys)
    assert moves[("v1", "v0")] == 0
    assert 0.09 < moves[("v0", "v1")] / len(keys) < 0.11


def test_failover_picks_another_live_variant_and_none_when_alone():
    s = Selector(table(50, 50, 0))
    assert {s.failover_for(s.live[0]).name for _ in range(50)} == {"v1"}
    assert Selector(table(100, 0)).failover_for(Variant("v0", "0.0.0", "http://v0", 100, False)) is None


def test_layout_must_cover_all_buckets():
    with pytest.raises(ValueError):
        Selector(table(50, 40))
    assert BUCKETS == 10_000


def test_assignment_does_not_depend_on_the_process_hash_seed():
    code = ("from mlserving.server.router.selection import sticky_bucket;"
            "print([sticky_bucket(f'k{i}'.encode()) for i in range(50)])")
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={"PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(outputs) == 1
