"""What the e2e suite sends to a cluster, checked against the local control plane's API server.

The e2e suite itself needs a node that runs our images; these checks need only a real API
server (marker ``cluster``, the root conftest's ``cluster`` fixture), so they run wherever the
operator's tests run and catch drift between the suite and the CRD, the examples and
PodSecurity ``restricted`` before anyone builds an image.
"""

from __future__ import annotations

import json
import time

import pytest
from crd_kit import wait_crd_served
from test_ab import (
    REPO_ROOT,
    ROLLOUT_VERSION,
    example_md,
    load_job,
    loadgen_configmap,
    restricted_namespace,
)

pytestmark = pytest.mark.cluster


def dry_run(cluster, obj: dict):
    return cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(obj), check=False)


def test_deploy_is_accepted_by_the_api_server(cluster):
    cluster.kubectl("apply", "-k", str(REPO_ROOT / "crds"))
    cluster.kubectl("apply", "-f", str(REPO_ROOT / "deploy" / "namespace.yaml"))
    proc = cluster.kubectl("apply", "--dry-run=server", "-k", str(REPO_ROOT / "deploy"), check=False)
    assert proc.returncode == 0, proc.stderr
    assert "deployment.apps/mlserving-operator" in proc.stdout, proc.stdout


def test_the_e2e_model_deployment_and_its_changes_are_admitted(cluster, k8s_namespace):
    cluster.kubectl("apply", "-k", str(REPO_ROOT / "crds"))
    wait_crd_served(cluster)
    md = example_md(k8s_namespace)
    cluster.apply(md)
    name = md["metadata"]["name"]
    variants = md["spec"]["variants"]
    index = {v["name"]: i for i, v in enumerate(variants)}

    def patch(ops):
        return cluster.kubectl("patch", f"modeldeployment/{name}", "-n", k8s_namespace, "--type=json",
                               "-p", json.dumps(ops), check=False)

    # the suite's two changes: the candidate's rollout, then 50/50
    proc = patch([{"op": "replace", "path": f"/spec/variants/{index['candidate']}/version", "value": ROLLOUT_VERSION}])
    assert proc.returncode == 0, proc.stderr
    proc = patch([{"op": "replace", "path": f"/spec/variants/{index[n]}/weight", "value": 50}
                  for n in ("stable", "candidate")])
    assert proc.returncode == 0, proc.stderr
    spec = cluster.get_json(f"modeldeployment/{name}", namespace=k8s_namespace)["spec"]
    assert {v["name"]: (v["version"], v["weight"]) for v in spec["variants"]} == {
        "stable": (variants[index["stable"]]["version"], 50), "candidate": (ROLLOUT_VERSION, 50)}
    assert spec["resources"]["requests"]["cpu"] == "50m"
    # the same path with a bad value is refused, so the two patches above were really validated
    proc = patch([{"op": "replace", "path": f"/spec/variants/{index['candidate']}/weight", "value": 60}])
    assert proc.returncode != 0 and "weight" in proc.stderr
    cluster.kubectl("delete", f"modeldeployment/{name}", "-n", k8s_namespace, "--wait=false")


def test_the_load_job_runs_under_restricted_pod_security(cluster, k8s_namespace):
    ns = restricted_namespace(k8s_namespace)
    cluster.kubectl("label", "namespace", k8s_namespace, "--overwrite",
                    *[f"{k}={v}" for k, v in ns["metadata"]["labels"].items()])
    cluster.apply(loadgen_configmap(k8s_namespace))
    job = load_job("load-check", ["--url", "http://fraud/predict", "--payload", "{}", "--duration", "5"], 60,
                   namespace=k8s_namespace)
    proc = dry_run(cluster, job)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr  # no PodSecurity warning either

    # PodSecurity enforces on pods: admit the Job's pod template as a pod (dry run)
    deadline = time.monotonic() + 60
    while cluster.kubectl("get", "serviceaccount", "default", "-n", k8s_namespace, check=False).returncode:
        assert time.monotonic() < deadline, "no default ServiceAccount in the namespace after 60 s"
        time.sleep(1)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "load-check", "namespace": k8s_namespace},
           "spec": job["spec"]["template"]["spec"]}
    proc = dry_run(cluster, pod)
    assert proc.returncode == 0, proc.stderr
    bad = json.loads(json.dumps(pod))
    bad["spec"]["containers"][0]["securityContext"].pop("allowPrivilegeEscalation")
    proc = dry_run(cluster, bad)
    assert proc.returncode != 0 and "restricted" in proc.stderr, proc.stderr
