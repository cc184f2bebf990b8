"""Routing table format 2: a variant split into tracks during a rollout (docs/api.md, "Routing table")."""

import collections
import copy
import itertools
import json

import pytest
from mlserving.server.router.compare import compare_answers
from mlserving.server.router.selection import Selector
from mlserving.server.router.table import TableError, parse_table

OLD = "http://fraud-stable.team-a.svc.cluster.local"
NEW = "http://fraud-stable-6b1f2.team-a.svc.cluster.local"


def tracked(new_weight: int, other: int = 0, shadow: bool = False, fmt: int | None = 2) -> dict:
    tracks = ([{"version": "1.0.0", "url": OLD, "weight": 100}, {"version": "2.0.0", "url": NEW, "weight": 0,
                                                                  "shadow": True}] if shadow else
              [{"version": "1.0.0", "url": OLD, "weight": 100 - new_weight},
               {"version": "2.0.0", "url": NEW, "weight": new_weight}])
    variants = [{"name": "stable", "version": "1.0.0", "url": OLD, "weight": 100 - other, "mirror": False,
                 "tracks": tracks}]
    if other:
        variants.append({"name": "candidate", "version": "3.0.0", "url": "http://fraud-candidate", "weight": other,
                         "mirror": False})
    doc = {"generation": 9, "stickyHeader": "x-user-id", "variants": variants}
    if fmt is not None:
        doc["format"] = fmt
    return doc


def refusal(doc) -> str:
    with pytest.raises(TableError) as info:
        parse_table(json.dumps(doc))
    return str(info.value)


def test_the_documented_format_2_example_is_accepted():
    table = parse_table(json.dumps(tracked(25)))
    assert table.format == 2
    assert [(t.version, t.weight) for t in table.variants[0].tracks] == [("1.0.0", 75), ("2.0.0", 25)]
    assert "stable=100[1.0.0:75,2.0.0:25]" in table.describe()


def test_a_table_without_format_is_format_1():
    doc = tracked(25, fmt=None)
    for v in doc["variants"]:
        v.pop("tracks")
    assert parse_table(json.dumps(doc)).format == 1


@pytest.mark.parametrize("change, fragment", [
    (lambda d: d.pop("format"), 'format: a table whose variants carry tracks must say "format": 2'),
    (lambda d: d.update(format=3), "format: must be one of 1, 2, got 3"),
    (lambda d: d["variants"][0]["tracks"][1].update(weight=30),
     "variants[0].tracks[].weight: the weights of a variant's non-shadow tracks must sum to 100, got 105"),
    (lambda d: d["variants"][0]["tracks"][0].update(url="http://elsewhere"),
     "variants[0].tracks[0]: must be the variant's own version and url"),
    (lambda d: d["variants"][0]["tracks"][1].update(wieght=1), "variants[0].tracks[1].wieght: unknown field"),
    (lambda d: d["variants"][0]["tracks"].pop(), "variants[0].tracks: must be a list of 2 to 4 tracks, got 1"),
    (lambda d: d["variants"][0]["tracks"][1].update(shadow=True),
     "variants[0].tracks[1].weight: a shadow track must have weight 0"),
    (lambda d: d["variants"][0]["tracks"][1].pop("url"), "variants[0].tracks[1].url: required"),
])
def test_broken_tracks_are_refused_naming_the_field(change, fragment):
    doc = copy.deepcopy(tracked(25))
    change(doc)
    assert fragment in refusal(doc)


def test_tracks_split_the_variants_own_buckets_in_track_order():
    s = Selector(parse_table(json.dumps(tracked(25, other=20))))
    # stable owns [0, 8000): old version [0, 6000), new [6000, 8000); candidate keeps [8000, 10000).
    picks = {b: (s.for_bucket(b).name, s.for_bucket(b).version) for b in (0, 5999, 6000, 7999, 8000, 9999)}
    assert picks == {0: ("stable", "1.0.0"), 5999: ("stable", "1.0.0"), 6000: ("stable", "2.0.0"),
                     7999: ("stable", "2.0.0"), 8000: ("candidate", "3.0.0"), 9999: ("candidate", "3.0.0")}
    assert s.for_bucket(6000).identity == b"x-mlserving-variant: stable\r\nx-model-version: 2.0.0\r\n"


def test_sticky_users_only_move_from_old_to_new_as_the_steps_grow():
    keys = [f"user-{i}".encode() for i in range(20_000)]
    steps = [0, 10, 25, 50, 100]
    tables = [Selector(parse_table(json.dumps(tracked(w, other=20)))) if 0 < w < 100 else None for w in steps]
    assigned = []
    for w, s in zip(steps, tables, strict=True):
        if s is None:  # 0 and 100 are the ends: only the old or only the new version
            assigned.append({k: "1.0.0" if w == 0 else "2.0.0" for k in keys})
            continue
        assigned.append({k: s.pick(k).version for k in keys if s.pick(k).name == "stable"})
    for before, after in itertools.pairwise(assigned):
        moves = collections.Counter((before[k], after[k]) for k in keys if k in before and k in after)
        assert moves[("2.0.0", "1.0.0")] == 0, moves
    share = sum(v == "2.0.0" for v in assigned[2].values()) / len(assigned[2])
    assert 0.23 < share < 0.27


def test_a_shadow_track_gets_no_primary_traffic_but_rides_on_the_variants_routes():
    s = Selector(parse_table(json.dumps(tracked(0, shadow=True))))
    assert {s.pick().version for _ in range(2000)} == {"1.0.0"}
    assert [(r.version, r.url) for r in s.routes[0].shadows] == [("2.0.0", NEW)]


def test_failover_goes_to_the_other_track():
    s = Selector(parse_table(json.dumps(tracked(50))))
    new = s.for_bucket(9999)
    assert {s.failover_for(new).version for _ in range(20)} == {"1.0.0"}


def answer(**fields) -> bytes:
    return json.dumps({"request_id": "r1", "model_name": "fraud", "model_version": "1.0.0", **fields}).encode()


@pytest.mark.parametrize("primary, shadow, outcome", [
    (answer(is_fraud=True, fraud_probability=0.9), answer(is_fraud=True, fraud_probability=0.5), "same"),
    (answer(is_fraud=True, fraud_probability=0.9), answer(is_fraud=False, fraud_probability=0.9), "flip"),
    (answer(predictions=[{"label": "cat"}]), answer(predictions=[{"label": "dog"}]), "flip"),
    (answer(value=100.0), answer(value=104.0), "same"),
    (answer(value=100.0), answer(value=106.0), "value_delta"),
    (answer(outputs=[{"name": "y", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]),
     answer(outputs=[{"name": "y", "datatype": "FP32", "shape": [1, 1], "data": [2.0]}]), "value_delta"),
    (answer(value=1.0), b"not json", "error"),
    (answer(value=1.0), answer(other=1.0), "error"),
])
def test_shadow_answers_are_compared_by_decision_or_value(primary, shadow, outcome):
    assert compare_answers(200, primary, 200, shadow) == outcome


def test_an_error_answer_on_either_side_is_not_comparable():
    assert compare_answers(200, answer(value=1.0), 500, answer(value=1.0)) == "error"
    assert compare_answers(503, answer(value=1.0), 200, answer(value=1.0)) == "error"
