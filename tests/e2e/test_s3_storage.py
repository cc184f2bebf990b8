"""End to end: a model pulled from a real S3 store by the init container on the real node.

SeaweedFS (tests/s3_store.py, checking request signatures) listens on the node bridge address, so
pods reach it the way they would reach an object store outside the cluster. A model trained
here is uploaded under ``s3://models/<name>/1.0.0``; a ModelDeployment with ``spec.storage.s3`` and
a Secret holding the key pair must reach Ready and answer what the model answers. The same with a
Secret holding a wrong secret key must fail: the init container's log and the ModelDeployment's
status name the URI and the store's refusal.

The same paths run against the real store in tests/cli/test_fetch_s3.py and against the in-memory
API in tests/operator/test_reconciler.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest
from providers.base import REPO_ROOT
from s3_store import running_store
from test_ab import install_operator, restricted_namespace

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MLSERVING = REPO_ROOT / ".venv" / "bin" / "mlserving"
NAMESPACE = "mlserving-e2e-s3"
MODEL = "fraud-s3"
URI = f"s3://models/{MODEL}/1.0.0"
NODE_IP = "10.244.0.1"  # hack/node/lib.sh NODE_IP: the bridge the pods route to
RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}


@pytest.fixture(scope="module")
def store(e2e_cluster, tmp_path_factory):
    if e2e_cluster.provider.name != "local":
        pytest.skip("the S3 store listens on the real node's bridge (provider local)")
    out = tmp_path_factory.mktemp("registry")
    subprocess.run([str(MLSERVING), "train", "--model", MODEL, "--version", "1.0.0", "--n-estimators", "20",
                    "--out", str(out)], check=True, capture_output=True, timeout=600)
    with running_store(NODE_IP, tmp_path_factory.mktemp("seaweedfs")) as running:
        running.upload_dir("models", f"{MODEL}/1.0.0", out / MODEL / "1.0.0")
        yield running, out / MODEL / "1.0.0"


def secret(name: str, access: str, secret_key: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NAMESPACE},
            "stringData": {"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret_key}}


def model_deployment(name: str, endpoint: str, secret_name: str) -> dict:
    return {"apiVersion": "mlserving.io/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"model": MODEL, "resources": RESOURCES,
                     "storage": {"s3": {"endpoint": endpoint, "region": "us-east-1", "secretName": secret_name}},
                     "variants": [{"name": "stable", "version": "1.0.0", "weight": 100, "replicas": 1,
                                   "storageUri": URI}]}}


@pytest.fixture(scope="module")
def deployed(e2e_cluster, store):
    k = e2e_cluster
    running, _ = store
    install_operator(k)
    k.apply([restricted_namespace(NAMESPACE),
             secret("model-store", running.access_key, running.secret_key),
             secret("wrong-key", running.access_key, "not-the-secret-key")])
    k.apply([model_deployment("s3-good", running.endpoint, "model-store"),
             model_deployment("s3-wrong", running.endpoint, "wrong-key")])
    yield k
    k.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false", check=False)


def test_a_model_from_s3_reaches_ready_and_serves_its_answers(deployed, store):
    _, version_dir = store
    deployed.kubectl("wait", "--for=condition=Ready", "modeldeployment/s3-good", "-n", NAMESPACE,
                     "--timeout=300s", timeout=320)
    svc = deployed.get_json("service", "s3-good", namespace=NAMESPACE)
    features = [0.05 * i for i in range(json.loads((version_dir / "metadata.json").read_text())["n_features"])]
    req = urllib.request.Request(f"http://{svc['spec']['clusterIP']}/predict", method="POST",
                                 data=json.dumps({"features": features}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = json.loads(resp.read())
    expected = local_answer(version_dir, features)
    assert body["model_version"] == "1.0.0"
    assert body["fraud_probability"] == pytest.approx(expected, rel=1e-5, abs=1e-6)


def local_answer(version_dir, features) -> float:
    code = ("import json, sys, joblib, numpy as np; m = joblib.load(sys.argv[1]);"
            "print(m.predict_proba(np.asarray([json.loads(sys.argv[2])]))[0, 1])")
    out = subprocess.run([sys.executable, "-c", code, str(version_dir / "model.joblib"), json.dumps(features)],
                         check=True, capture_output=True, text=True, timeout=120)
    return float(out.stdout)


def test_a_wrong_secret_fails_in_the_init_log_and_in_the_status(deployed):
    deadline = time.monotonic() + 240
    status: dict = {}
    while time.monotonic() < deadline:
        status = deployed.get_json("modeldeployment", "s3-wrong", namespace=NAMESPACE).get("status") or {}
        ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
        if ready.get("reason") == "ModelFetchFailed":
            break
        time.sleep(3)
    else:
        pytest.fail(f"no ModelFetchFailed in the status after 240 s: {json.dumps(status, indent=1)}")
    assert status["phase"] == "Failed"
    assert URI in ready["message"] and "SignatureDoesNotMatch" in ready["message"], ready
    pods = deployed.get_json("pods", "-l", "app.kubernetes.io/instance=s3-wrong", namespace=NAMESPACE)["items"]
    name = pods[0]["metadata"]["name"]
    # The current run's log, or the last one's while the kubelet backs off before the next try.
    log = (deployed.kubectl("logs", "-n", NAMESPACE, name, "-c", "fetch-model", check=False)
           + deployed.kubectl("logs", "-n", NAMESPACE, name, "-c", "fetch-model", "--previous", check=False))
    assert f"mlserving fetch: error: {URI}: S3 error SignatureDoesNotMatch" in log
