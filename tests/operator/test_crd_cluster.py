"""The CRD on a real API server: established, explained, CEL rules, printer columns, and the
rendered children admitted under the restricted Pod Security Standard (no operator involved)."""

from __future__ import annotations

import copy
import json
import pathlib
import re

import pytest
import yaml
from crd_kit import wait_crd_served
from mlserving.operator.children import desired_children
from mlserving.operator.settings import OperatorSettings
from mlserving.operator.status import compute_status

pytestmark = pytest.mark.cluster

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "modeldeployments.mlserving.io.yaml"
AB = yaml.safe_load((ROOT / "examples" / "fraud-ab.yaml").read_text())


@pytest.fixture(scope="module")
def crd_installed(cluster):
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=mlserving-tests", "-f", str(CRD))
    wait_crd_served(cluster)
    return cluster


def md(name="fraud", **spec_changes) -> dict:
    obj = copy.deepcopy(AB)
    obj["metadata"] = {"name": name}
    obj["spec"].update(copy.deepcopy(spec_changes))
    return obj


def dry_run(cluster, namespace, obj):
    return cluster.kubectl("create", "--dry-run=server", "-n", namespace, "-o", "json", "-f", "-",
                           input=json.dumps(obj), check=False)


def test_crd_is_established_and_explained(crd_installed):
    crd = crd_installed.get_json("crd", "modeldeployments.mlserving.io")
    established = [c for c in crd["status"]["conditions"] if c["type"] == "Established"]
    assert established and established[0]["status"] == "True"
    out = crd_installed.kubectl("explain", "modeldeployment.spec.variants").stdout
    assert "The model versions to serve" in out
    for field in ("name", "version", "weight", "mirror", "storageUri", "replicas", "resources"):
        assert re.search(rf"^\s+{field}\s", out, re.MULTILINE), f"{field} missing from kubectl explain:\n{out}"
    weight = crd_installed.kubectl("explain", "md.spec.variants.weight").stdout
    assert "Percent of live traffic" in weight


def test_valid_example_is_accepted_with_defaults(crd_installed, k8s_namespace):
    proc = dry_run(crd_installed, k8s_namespace, md())
    assert proc.returncode == 0, proc.stderr
    stored = json.loads(proc.stdout)
    assert [v["mirror"] for v in stored["spec"]["variants"]] == [False, False]
    assert [v["replicas"] for v in stored["spec"]["variants"]] == [1, 1]
    assert stored["spec"]["autoscaling"]["minReplicas"] == 2
    assert stored["spec"]["placement"] == {"spread": "soft"}
    single = yaml.safe_load((ROOT / "examples" / "fraud-single.yaml").read_text())
    proc = dry_run(crd_installed, k8s_namespace, single)
    assert proc.returncode == 0, proc.stderr
    no_resources = md()
    del no_resources["spec"]["resources"]
    stored = json.loads(dry_run(crd_installed, k8s_namespace, no_resources).stdout)
    assert stored["spec"]["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"},
                                           "limits": {"cpu": "500m", "memory": "512Mi"}}


def variants(*entries):
    return [dict(zip(("name", "version", "weight"), e[:3]), **(e[3] if len(e) > 3 else {})) for e in entries]


INVALID = {
    "weights-sum": (md(variants=variants(("stable", "1.0.0", 80), ("candidate", "2.0.0", 10))),
                    "spec.variants[].weight: the weights of non-mirror variants must sum to exactly 100"),
    "mirror-weight": (md(variants=variants(("stable", "1.0.0", 100), ("shadow", "2.0.0", 5, {"mirror": True}))),
                      "spec.variants[].weight: a mirror variant must have weight 0"),
    "max-below-min": (md(autoscaling={"minReplicas": 5, "maxReplicas": 2}),
                      "spec.autoscaling.maxReplicas: must be greater than or equal to minReplicas"),
    "variant-name-too-long": (md(name="m" * 40, variants=variants(("v" * 30, "1.0.0", 100))),
                              "spec.variants[].name: '<metadata.name>-<variant name>' must fit in 63"),
    "router-name-too-long": (md(name="m" * 57), "metadata.name: at most 56 characters"),
    "router-reserved": (md(variants=variants(("stable", "1.0.0", 50), ("router", "2.0.0", 50))),
                        "spec.variants[].name: 'router' is reserved"),
    "name-not-dns1035": (md(name="1fraud"), "metadata.name: must be a DNS-1035 label"),
    "variant-name-invalid": (md(variants=variants(("Stable", "1.0.0", 100))), "spec.variants[0].name"),
    "version-invalid": (md(variants=variants(("stable", "1.0.0+build", 100))), "spec.variants[0].version"),
    "model-invalid": (md(model="Fraud_Model"), "spec.model"),
    "weight-range": (md(variants=variants(("stable", "1.0.0", 101))), "spec.variants[0].weight"),
    "duplicate-variant": (md(variants=variants(("stable", "1.0.0", 50), ("stable", "2.0.0", 50))),
                          "spec.variants[1]: Duplicate value"),
    "too-many-variants": (md(variants=variants(*[(f"v{i}", "1", 100 if i == 0 else 0) for i in range(9)])),
                          "spec.variants: Too many"),
    "no-variants": (md(variants=[]), "spec.variants"),
    "missing-model": ({**md(), "spec": {k: v for k, v in md()["spec"].items() if k != "model"}}, "spec.model: Required"),
    "sticky-header-invalid": (md(routing={"stickyHeader": "x user id"}), "spec.routing.stickyHeader"),
    "behavior-negative-window": (
        md(autoscaling={"maxReplicas": 4, "behavior": {"scaleDown": {"stabilizationWindowSeconds": -1}}}),
        "spec.autoscaling.behavior.scaleDown.stabilizationWindowSeconds"),
    "behavior-window-too-long": (
        md(autoscaling={"maxReplicas": 4, "behavior": {"scaleUp": {"stabilizationWindowSeconds": 3601}}}),
        "spec.autoscaling.behavior.scaleUp.stabilizationWindowSeconds"),
    "behavior-unknown-policy-type": (
        md(autoscaling={"maxReplicas": 4, "behavior": {"scaleUp": {
            "policies": [{"type": "Nodes", "value": 2, "periodSeconds": 15}]}}}),
        'spec.autoscaling.behavior.scaleUp.policies[0].type: Unsupported value: "Nodes"'),
    "behavior-policy-without-period": (
        md(autoscaling={"maxReplicas": 4, "behavior": {"scaleDown": {"policies": [{"type": "Pods", "value": 1}]}}}),
        "spec.autoscaling.behavior.scaleDown.policies[0].periodSeconds: Required"),
    "behavior-select-policy": (
        md(autoscaling={"maxReplicas": 4, "behavior": {"scaleDown": {"selectPolicy": "Sometimes"}}}),
        "spec.autoscaling.behavior.scaleDown.selectPolicy"),
    "rollout-steps-not-increasing": (md(rollout={"steps": [10, 50, 25]}),
                                     "spec.rollout.steps: must be strictly increasing"),
    "rollout-steps-repeated": (md(rollout={"steps": [10, 10]}), "spec.rollout.steps: must be strictly increasing"),
    "rollout-step-100": (md(rollout={"steps": [50, 100]}), "spec.rollout.steps[1]"),
    "rollout-step-0": (md(rollout={"steps": [0, 50]}), "spec.rollout.steps[0]"),
    "rollout-negative-interval": (md(rollout={"intervalSeconds": -1}), "spec.rollout.intervalSeconds"),
    "rollout-error-ratio": (md(rollout={"slo": {"maxErrorRatio": 1.5}}), "spec.rollout.slo.maxErrorRatio"),
    "rollout-flip-ratio": (md(rollout={"slo": {"maxDecisionFlipRatio": -0.1}}),
                           "spec.rollout.slo.maxDecisionFlipRatio"),
    "rollout-latency-ratio": (md(rollout={"slo": {"maxLatencyRatio": 0.5}}), "spec.rollout.slo.maxLatencyRatio"),
    "rollout-p99-zero": (md(rollout={"slo": {"maxLatencyP99Ms": 0}}), "spec.rollout.slo.maxLatencyP99Ms"),
    "rollout-failure-limit": (md(rollout={"failureLimit": 0}), "spec.rollout.failureLimit"),
    "rollout-track-name-too-long": (md(name="m" * 30, rollout={}, variants=variants(("v" * 27, "1.0.0", 100))),
                                    "spec.variants[].name: with spec.rollout"),
    "spread-invalid": (md(placement={"spread": "always"}), 'spec.placement.spread: Unsupported value: "always"'),
    "s3-without-store": (md(variants=variants(("stable", "1.0.0", 100, {"storageUri": "s3://models/fraud/1.0.0"}))),
                         "spec.variants[].storageUri: an s3:// storageUri needs spec.storage.s3"),
    "s3-endpoint-with-path": (md(storage={"s3": {"endpoint": "http://h:8333/x", "secretName": "s"}}),
                              "spec.storage.s3.endpoint"),
    "s3-without-secret": (md(storage={"s3": {"endpoint": "http://h:8333"}}), "spec.storage.s3.secretName: Required"),
}


def test_s3_storage_is_accepted_with_the_region_defaulted(crd_installed, k8s_namespace):
    obj = md(storage={"s3": {"endpoint": "http://10.244.0.1:8333", "secretName": "model-store"}},
             variants=variants(("stable", "1.0.0", 100, {"storageUri": "s3://models/fraud/1.0.0"})))
    proc = dry_run(crd_installed, k8s_namespace, obj)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["spec"]["storage"]["s3"]["region"] == "us-east-1"


def test_rollout_is_defaulted_and_explained(crd_installed, k8s_namespace):
    from mlserving.operator.spec import ROLLOUT_DEFAULTS, SLO_DEFAULTS

    proc = dry_run(crd_installed, k8s_namespace, md(rollout={}))
    assert proc.returncode == 0, proc.stderr
    stored = json.loads(proc.stdout)["spec"]["rollout"]
    assert {k: stored[k] for k in ROLLOUT_DEFAULTS} == ROLLOUT_DEFAULTS
    assert stored["slo"] == SLO_DEFAULTS
    out = crd_installed.kubectl("explain", "md.spec.rollout").stdout
    for field in ("steps", "intervalSeconds", "failureLimit", "minRequests", "progressDeadlineSeconds",
                  "shadowSeconds", "slo"):
        assert re.search(rf"^\s+{field}\s", out, re.MULTILINE), f"{field} missing from kubectl explain:\n{out}"
    slo = crd_installed.kubectl("explain", "md.spec.rollout.slo").stdout
    for field in ("maxErrorRatio", "maxLatencyP99Ms", "maxLatencyRatio", "maxDecisionFlipRatio", "maxValueDeltaRatio"):
        assert field in slo
    assert "strictly" in crd_installed.kubectl("explain", "md.spec.rollout.steps").stdout


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_spec_rejected_with_message_naming_the_field(crd_installed, k8s_namespace, case):
    obj, fragment = INVALID[case]
    proc = dry_run(crd_installed, k8s_namespace, obj)
    assert proc.returncode != 0, f"{case} was accepted"
    assert fragment in proc.stderr, proc.stderr


def test_valid_behavior_is_stored_as_given(crd_installed, k8s_namespace):
    behavior = {"scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                            "policies": [{"type": "Pods", "value": 2, "periodSeconds": 15},
                                         {"type": "Percent", "value": 100, "periodSeconds": 15}]},
                "scaleDown": {"stabilizationWindowSeconds": 30}}
    proc = dry_run(crd_installed, k8s_namespace, md(autoscaling={"maxReplicas": 4, "behavior": behavior}))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["spec"]["autoscaling"]["behavior"] == behavior


def test_printer_columns_show_status(crd_installed, k8s_namespace):
    cluster = crd_installed
    cluster.kubectl("create", "-n", k8s_namespace, "-f", "-", input=json.dumps(md()))
    obj = cluster.get_json("md", "fraud", namespace=k8s_namespace)
    assert obj["metadata"]["generation"] == 1
    status = compute_status(obj, {}, None, "2026-01-01T00:00:00Z")
    cluster.kubectl("patch", "md", "fraud", "-n", k8s_namespace, "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": status}))
    lines = cluster.kubectl("get", "modeldeployments", "-n", k8s_namespace).stdout.splitlines()
    assert lines[0].split() == ["NAME", "READY", "PHASE", "TRAFFIC", "ROLLOUT", "URL", "AGE"]
    row = lines[1].split()
    assert row[0] == "fraud"
    # No rollout yet: the ROLLOUT column is empty, so the row has one word less than the header.
    assert row[3:6] == ["stable=1.0.0:90%", "candidate=2.0.0:10%", f"http://fraud.{k8s_namespace}.svc.cluster.local"]
    assert (row[1] == "True") == (row[2] == "Ready")  # an operator under test may have written status too


def test_rendered_children_are_valid_and_admitted_under_restricted_pod_security(crd_installed, k8s_namespace):
    cluster = crd_installed
    cluster.kubectl("label", "namespace", k8s_namespace, "pod-security.kubernetes.io/enforce=restricted",
                    "pod-security.kubernetes.io/warn=restricted", "pod-security.kubernetes.io/enforce-version=latest")
    cluster.kubectl("create", "-n", k8s_namespace, "-f", "-", input=json.dumps(md(
        variants=variants(("stable", "1.0.0", 90), ("candidate", "2.0.0", 10,
                                                     {"storageUri": "https://models.example/fraud-2.0.0.tgz"}),
                          ("shadow", "3.0.0", 0, {"mirror": True, "storageUri": "pvc://models/fraud/3.0.0"})))))
    obj = cluster.get_json("md", "fraud", namespace=k8s_namespace)
    children = desired_children(obj, OperatorSettings.from_env({}))
    for child in children:
        proc = cluster.kubectl("apply", "--server-side", "--field-manager=mlserving-operator", "--force-conflicts",
                               "-f", "-", input=json.dumps(child), check=False)
        assert proc.returncode == 0, f"{child['kind']} {child['metadata']['name']}: {proc.stderr}"
        assert "Warning" not in proc.stderr, f"{child['kind']} {child['metadata']['name']}: {proc.stderr}"
    # Pod admission needs the namespace's default ServiceAccount, which a controller adds a moment
    # after the namespace appears; create it if it is not there yet (AlreadyExists is fine).
    cluster.kubectl("create", "serviceaccount", "default", "-n", k8s_namespace, check=False)
    for child in children:
        if child["kind"] != "Deployment":
            continue
        template = child["spec"]["template"]
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": child["metadata"]["name"] + "-check", "namespace": k8s_namespace,
                            "labels": template["metadata"]["labels"]},
               "spec": template["spec"]}
        proc = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
        assert proc.returncode == 0, f"pod of {child['metadata']['name']}: {proc.stderr}"
        assert "Warning" not in proc.stderr, proc.stderr


def test_deploy_kustomization_builds_with_the_crd(crd_installed):
    out = crd_installed.kubectl("kustomize", str(ROOT / "deploy")).stdout
    kinds = [(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(out) if d]
    assert ("CustomResourceDefinition", "modeldeployments.mlserving.io") in kinds
    assert ("Deployment", "mlserving-operator") in kinds
