"""spec.rollout parsed and defaulted like the CRD does, and refused naming the field."""

import copy
import pathlib

import pytest
import yaml
from mlserving.operator.spec import ROLLOUT_DEFAULTS, SLO_DEFAULTS, SpecError, parse

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((ROOT / "crds" / "modeldeployments.mlserving.io.yaml").read_text())
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["rollout"]


def md(rollout, name="fraud", variant="stable"):
    return {"metadata": {"name": name, "namespace": "ns", "uid": "u1", "generation": 1},
            "spec": {"model": "fraud", "variants": [{"name": variant, "version": "1.0.0", "weight": 100}],
                     "rollout": copy.deepcopy(rollout)}}


def test_defaults_agree_with_the_crd():
    crd = {k: SCHEMA["properties"][k]["default"] for k in ROLLOUT_DEFAULTS}
    assert crd == ROLLOUT_DEFAULTS
    slo = SCHEMA["properties"]["slo"]["properties"]
    assert {k: slo[k]["default"] for k in SLO_DEFAULTS} == SLO_DEFAULTS
    assert "default" not in slo["maxLatencyP99Ms"]
    rollout = parse(md({})).rollout
    assert rollout.steps == (10, 25, 50) and rollout.interval_seconds == 30 and rollout.failure_limit == 2
    assert rollout.slo.max_latency_p99_ms is None and rollout.slo.max_latency_ratio == 1.5


def test_without_rollout_there_is_none():
    doc = md({})
    del doc["spec"]["rollout"]
    assert parse(doc).rollout is None


@pytest.mark.parametrize("rollout, field", [
    ({"steps": [10, 50, 25]}, "spec.rollout.steps"),
    ({"steps": [10, 10]}, "spec.rollout.steps"),
    ({"steps": [0, 10]}, "spec.rollout.steps[0]"),
    ({"steps": [50, 100]}, "spec.rollout.steps[1]"),
    ({"steps": []}, "spec.rollout.steps"),
    ({"intervalSeconds": -1}, "spec.rollout.intervalSeconds"),
    ({"failureLimit": 0}, "spec.rollout.failureLimit"),
    ({"slo": {"maxErrorRatio": 1.2}}, "spec.rollout.slo.maxErrorRatio"),
    ({"slo": {"maxLatencyRatio": 0.9}}, "spec.rollout.slo.maxLatencyRatio"),
    ({"slo": {"maxLatencyP99Ms": 0}}, "spec.rollout.slo.maxLatencyP99Ms"),
    ({"slo": {"maxValueDeltaRatio": True}}, "spec.rollout.slo.maxValueDeltaRatio"),
])
def test_bad_rollouts_name_the_field(rollout, field):
    with pytest.raises(SpecError) as info:
        parse(md(rollout))
    assert info.value.field == field


def test_the_track_name_must_fit():
    parse(md({}, name="m" * 30, variant="v" * 26))
    with pytest.raises(SpecError) as info:
        parse(md({}, name="m" * 30, variant="v" * 27))
    assert "57 characters" in str(info.value)
