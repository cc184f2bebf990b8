"""`mlserving rollout` / `kubectl mlserving rollout`: references, status text, and the annotation
it sets on a real API server (skipped without the local control plane)."""

import json
import pathlib
import subprocess
import sys
import tomllib

import pytest
from crd_kit import wait_crd_served
from mlserving.cli.rollout import describe, parse_target

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("ref, name", [("md/fraud", "fraud"), ("modeldeployment/fraud", "fraud"),
                                       ("modeldeployment.mlserving.io/fraud", "fraud"), ("fraud", "fraud")])
def test_references(ref, name):
    assert parse_target(ref) == name


@pytest.mark.parametrize("ref", ["deployment/fraud", "md/"])
def test_bad_references_are_refused(ref):
    with pytest.raises(ValueError):
        parse_target(ref)


def test_status_text_names_phase_weight_analysis_and_history():
    md = {"metadata": {"name": "fraud"}, "status": {"rollout": {
        "summary": "stable 1.0.0->2.0.0 RolledBack 0%", "phase": "RolledBack", "step": 0, "weight": 0, "failures": 2,
        "message": "rolled back: maxErrorRatio: 20.0%",
        "lastAnalysis": {"time": "t", "verdict": "Failed", "failedCheck": "maxErrorRatio", "value": 0.2},
        "history": [{"time": "t0", "phase": "Progressing", "weight": 20, "message": "step 1 of 2"}]}}}
    text = describe(md)
    assert "RolledBack" in text and "failedCheck maxErrorRatio" in text and "value 0.2" in text
    assert "step 1 of 2" in text
    assert describe({"metadata": {"name": "x"}}) == "x: no rollout yet"


def test_kubectl_plugin_entry_point_is_declared():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kubectl-mlserving"] == scripts["mlserving"]


def test_unknown_action_is_refused_by_the_parser():
    proc = subprocess.run([sys.executable, "-m", "mlserving.cli.main", "rollout", "hurry", "md/fraud"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "invalid choice: 'hurry'" in proc.stderr


@pytest.mark.cluster
def test_commands_set_the_annotation_and_status_reads_it(cluster, k8s_namespace):
    crd = ROOT / "crds" / "modeldeployments.mlserving.io.yaml"
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=mlserving-tests", "-f", str(crd))
    wait_crd_served(cluster)
    cluster.apply(json.dumps({"apiVersion": "mlserving.io/v1alpha1", "kind": "ModelDeployment",
                              "metadata": {"name": "fraud"},
                              "spec": {"model": "fraud", "rollout": {},
                                       "variants": [{"name": "stable", "version": "1.0.0", "weight": 100}]}}),
                  namespace=k8s_namespace)
    base = [sys.executable, "-m", "mlserving.cli.main", "rollout"]
    env_args = ["-n", k8s_namespace, "--kubeconfig", str(cluster.kubeconfig)]
    proc = subprocess.run([*base, "pause", "md/fraud", *env_args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    md = cluster.get_json("md", "fraud", namespace=k8s_namespace)
    assert md["metadata"]["annotations"]["mlserving.io/rollout"] == "pause"
    proc = subprocess.run([*base, "status", "md/fraud", *env_args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "no rollout yet" in proc.stdout
    proc = subprocess.run([*base, "status", "md/missing", *env_args], capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and "not found" in proc.stderr
