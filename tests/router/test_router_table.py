"""Routing table validation: every rule of docs/api.md refuses the table with a message naming the field."""

import copy
import json

import pytest
from mlserving.server.router.table import TableError, parse_table

VALID = {"generation": 7, "stickyHeader": "x-user-id", "variants": [
    {"name": "stable", "version": "1.0.0", "url": "http://fraud-stable.team-a.svc.cluster.local",
     "weight": 90, "mirror": False},
    {"name": "candidate", "version": "2.0.0", "url": "http://fraud-candidate.team-a.svc.cluster.local",
     "weight": 10, "mirror": False}]}


def table_with(**changes):
    doc = copy.deepcopy(VALID)
    for path, value in changes.items():
        target = doc
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if key.isdigit() else target[key]
        target[keys[-1]] = value
    return json.dumps(doc)


def refusal(raw) -> str:
    with pytest.raises(TableError) as info:
        parse_table(raw)
    return str(info.value)


def test_the_documented_example_is_accepted():
    table = parse_table(json.dumps(VALID))
    assert table.generation == 7
    assert table.sticky_header == "x-user-id"
    assert [(v.name, v.version, v.weight, v.mirror) for v in table.variants] == [
        ("stable", "1.0.0", 90, False), ("candidate", "2.0.0", 10, False)]
    assert table.variants[0].url == "http://fraud-stable.team-a.svc.cluster.local"


def test_sticky_header_is_matched_case_insensitively_and_null_turns_it_off():
    assert parse_table(table_with(stickyHeader="X-User-ID")).sticky_header == "x-user-id"
    assert parse_table(table_with(stickyHeader=None)).sticky_header is None


def test_trailing_slash_is_normalised_and_https_and_ports_are_accepted():
    table = parse_table(table_with(variants__0__url="https://10.0.0.1:8443/"))
    assert table.variants[0].url == "https://10.0.0.1:8443"


def test_mirror_with_weight_zero_and_a_weight_zero_primary_are_accepted():
    doc = copy.deepcopy(VALID)
    doc["variants"][0]["weight"], doc["variants"][1]["weight"] = 100, 0
    doc["variants"].append({"name": "shadow", "version": "3.0.0", "url": "http://shadow:8080",
                            "weight": 0, "mirror": True})
    table = parse_table(json.dumps(doc))
    assert [v.name for v in table.live] == ["stable"]
    assert [v.name for v in table.mirrors] == ["shadow"]


@pytest.mark.parametrize("changes, expected", [
    # the five rules the issue names
    ({"variants__0__weight": 80}, "variants[].weight: the weights of non-mirror variants must sum to 100, got 90"),
    ({"variants__1__mirror": True}, "variants[1].weight: a mirror variant must have weight 0, got 10"),
    ({"variants__1__name": "stable"}, "variants[1].name: duplicate name 'stable' (also variants[0])"),
    ({"variants__0__url": "ftp://fraud-stable"}, "variants[0].url: must use http:// or https://"),
    ({"variants__0__url": "fraud-stable:8080"}, "variants[0].url: must use http:// or https://"),
    # the other rules of the table
    ({"variants__0__url": "http://fraud-stable/predict"}, "variants[0].url: must be a base URL without path"),
    ({"variants__0__url": "http://:80"}, "variants[0].url: has no host"),
    ({"variants__0__url": "http://host:notaport"}, "variants[0].url: not a valid URL"),
    ({"variants__0__weight": 101}, "variants[0].weight: must be an integer from 0 to 100, got 101"),
    ({"variants__0__weight": 90.0}, "variants[0].weight: must be an integer from 0 to 100, got 90.0"),
    ({"variants__0__weight": True}, "variants[0].weight: must be an integer from 0 to 100, got True"),
    ({"variants__0__mirror": "no"}, "variants[0].mirror: must be true or false, got 'no'"),
    ({"variants__0__name": "Stable"}, "variants[0].name: must be a DNS-1035 label"),
    ({"variants__0__name": "1stable"}, "variants[0].name: must be a DNS-1035 label"),
    ({"variants__0__version": ""}, "variants[0].version: must be 1 to 128 visible ASCII characters"),
    ({"variants__0__version": "1.0\r\nx-evil: 1"}, "variants[0].version: must be 1 to 128 visible ASCII"),
    ({"variants__0__version": "1.0.0 beta"}, "variants[0].version: must be 1 to 128 visible ASCII"),
    ({"variants__0__wieght": 90}, "variants[0].wieght: unknown field"),
    ({"generation": -1}, "generation: must be an integer >= 0, got -1"),
    ({"generation": "7"}, "generation: must be an integer >= 0, got '7'"),
    ({"stickyHeader": "x user"}, "stickyHeader: must be an HTTP header name or null, got 'x user'"),
    ({"stickyHeader": ""}, "stickyHeader: must be an HTTP header name or null, got ''"),
    ({"variants": []}, "variants: must be a list of 1 to 8 variants, got 0"),
    ({"variants": {"name": "x"}}, "variants: must be a list of 1 to 8 variants, got dict"),
    ({"extra": 1}, "extra: unknown field"),
])
def test_each_broken_rule_is_refused_naming_the_field(changes, expected):
    assert expected in refusal(table_with(**changes))


def test_no_live_variant_is_refused():
    doc = copy.deepcopy(VALID)
    for v in doc["variants"]:
        v["weight"], v["mirror"] = 0, True
    assert "variants: no live variant" in refusal(json.dumps(doc))


def test_more_than_eight_variants_is_refused():
    doc = copy.deepcopy(VALID)
    doc["variants"] = [dict(VALID["variants"][0], name=f"v{i}", weight=10) for i in range(9)]
    assert "variants: must be a list of 1 to 8 variants, got 9" in refusal(json.dumps(doc))


def test_missing_fields_are_named():
    doc = copy.deepcopy(VALID)
    del doc["variants"][1]["url"], doc["stickyHeader"]
    message = refusal(json.dumps(doc))
    assert "variants[1].url: required" in message
    assert "stickyHeader: required" in message


def test_every_problem_is_reported_at_once():
    message = refusal(table_with(generation=-3, variants__0__weight=500, variants__1__url="gopher://x"))
    assert "generation:" in message and "variants[0].weight:" in message and "variants[1].url:" in message


@pytest.mark.parametrize("raw, expected", [
    (b"{not json", "routing table: not valid JSON"),
    (b"\xff\xfe", "routing table: not valid JSON"),
    (b"[1, 2]", "routing table: must be a JSON object, got list"),
])
def test_unparseable_documents_are_refused(raw, expected):
    assert expected in refusal(raw)
