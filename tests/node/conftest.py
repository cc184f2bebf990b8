"""The real node (hack/node/up.sh): one kubelet + containerd node that really runs pods.

``real_node`` (session scope) brings the node up through the e2e suite's local provider
(tests/e2e/providers/local.py), builds and imports the server image from Dockerfile.server,
and stops the node at the end unless it was already running. Where the node cannot run
(not requested with MLSERVING_NODE=1, not root, binaries not built) the tests skip with the
reason; with ``MLSERVING_REQUIRE_NODE=1`` they fail instead.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))

from providers.base import ProviderError, project_images
from providers.local import LocalProvider


class NodeCluster:
    def __init__(self, provider: LocalProvider, kubeconfig: pathlib.Path, server_image: str):
        self.provider = provider
        self.kubeconfig = kubeconfig
        self.kubectl_bin = provider.kubectl()
        self.server_image = server_image
        self.node_env = provider.env
        self.provider_node_dir = REPO_ROOT / "hack" / "node"

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 120,
                check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.kubectl_bin, "--kubeconfig", str(self.kubeconfig), *args],
                              input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def apply(self, *objs: dict) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)}))

    def get_json(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def wait_for_pod(self, namespace: str, name: str, phase_or_ready: str, timeout: float) -> dict:
        """Wait until the pod is Ready (``"Ready"``) or has reached a phase; returns the pod."""
        deadline = time.monotonic() + timeout
        pod: dict = {}
        while time.monotonic() < deadline:
            pod = self.get_json("pod", name, "-n", namespace)
            status = pod.get("status", {})
            if phase_or_ready == "Ready":
                if any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])):
                    return pod
            elif status.get("phase") == phase_or_ready:
                return pod
            if status.get("phase") == "Failed" and phase_or_ready != "Failed":
                break
            time.sleep(1)
        events = self.kubectl("get", "events", "-n", namespace, check=False).stdout
        raise AssertionError(f"pod {namespace}/{name} not {phase_or_ready} after {timeout:.0f} s:\n"
                             f"{json.dumps(pod.get('status'), indent=1)}\n{events}")

    def wait_for_ready_endpoint(self, namespace: str, service: str, pod_ip: str, timeout: float = 60) -> None:
        """Wait until the Service's EndpointSlices list ``pod_ip`` as ready.

        A pod turns Ready before the endpoint controller and kube-proxy hear of it; until then
        kube-proxy rejects connections to the ClusterIP (connection refused).
        """
        deadline = time.monotonic() + timeout
        slices: dict = {}
        while time.monotonic() < deadline:
            slices = self.get_json("endpointslices", "-n", namespace,
                                   "-l", f"kubernetes.io/service-name={service}")
            for item in slices["items"]:
                for ep in item.get("endpoints") or []:
                    if pod_ip in ep.get("addresses", []) and ep.get("conditions", {}).get("ready"):
                        return
            time.sleep(0.5)
        raise AssertionError(f"service {namespace}/{service} has no ready endpoint {pod_ip} "
                             f"after {timeout:.0f} s:\n{json.dumps(slices, indent=1)}")


@pytest.fixture(scope="session")
def real_node():
    provider = LocalProvider()
    ok, reason = provider.available()
    if not ok:
        if os.environ.get("MLSERVING_REQUIRE_NODE") == "1":
            pytest.fail(f"real node: {reason} [MLSERVING_REQUIRE_NODE=1]", pytrace=False)
        pytest.skip(f"real node: {reason}")
    server = next(i for i in project_images() if i.ref.startswith("docker.io/mlserving/server:"))
    try:
        started = time.monotonic()
        kubeconfig = provider.up()
        print(f"real node: up in {time.monotonic() - started:.0f} s")
        started = time.monotonic()
        provider.load_images([server])
        print(f"real node: server image built and imported in {time.monotonic() - started:.0f} s")
    except ProviderError as exc:
        out = REPO_ROOT / "build" / "node-diagnostics"
        provider.dump_diagnostics(out)
        provider.down()
        pytest.fail(f"real node: {exc}\n(node logs in {out})", pytrace=False)
    try:
        yield NodeCluster(provider, kubeconfig, server.ref)
    finally:
        provider.down()
