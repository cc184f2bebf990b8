"""Acceptance of the real node (issue 7): a Ready node, real pods of the server image behind a
readiness probe, Services by name and ClusterIP, PodSecurity `restricted`, and a clean `down`.

The last test stops the node; it must stay last in this file.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest
from netprobe import RESTRICTED

pytestmark = [pytest.mark.node, pytest.mark.slow]

NAMESPACE = f"mls-node-{uuid.uuid4().hex[:6]}"
SERVER_POD = "server"


def pod(name: str, image: str, *, args: list[str] | None = None, command: list[str] | None = None,
        labels: dict | None = None, probe: bool = False, restart: str = "Always") -> dict:
    container = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "securityContext": RESTRICTED,
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if command:
        container["command"] = command
    if args:
        container["args"] = args
    if probe:
        container["ports"] = [{"name": "http", "containerPort": 8000}]
        container["readinessProbe"] = {"httpGet": {"path": "/health/ready", "port": "http"},
                                       "periodSeconds": 2, "failureThreshold": 2}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels or {}},
        "spec": {
            "restartPolicy": restart,
            "enableServiceLinks": False,
            "securityContext": {"runAsUser": 1000, "runAsGroup": 1000,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
        },
    }


@pytest.fixture(scope="module")
def ns(real_node):
    real_node.apply({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest"}},
    })
    # Pods cannot be created before the namespace's default ServiceAccount exists.
    real_node.kubectl("wait", "--for=jsonpath={.metadata.name}=default", "serviceaccount/default",
                      "-n", NAMESPACE, "--timeout=60s")
    yield NAMESPACE
    real_node.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


@pytest.fixture(scope="module")
def server_pod(real_node, ns):
    real_node.apply(
        pod(SERVER_POD, real_node.server_image, args=["serve"], labels={"app": "server"}, probe=True),
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "server", "namespace": ns},
         "spec": {"selector": {"app": "server"}, "ports": [{"port": 80, "targetPort": "http"}]}},
    )
    return real_node.wait_for_pod(ns, SERVER_POD, "Ready", timeout=240)


def http_json(url: str, timeout: float = 10) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def test_the_real_node_is_the_only_node_and_is_ready(real_node):
    nodes = real_node.get_json("nodes")["items"]
    assert [n["metadata"]["name"] for n in nodes] == [real_node.node_env["NODE_NAME"]]
    node = nodes[0]
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
    assert ready == "True"
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == real_node.node_env["K8S_VERSION"]
    assert info["containerRuntimeVersion"].startswith("containerd://")
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == real_node.node_env["NODE_IP"]
    # No kwok: nothing fakes this node's pods.
    assert "kwok.x-k8s.io/node" not in node["metadata"].get("annotations", {})


def test_server_pod_becomes_ready_through_its_readiness_probe(real_node, server_pod):
    status = server_pod["status"]
    assert status["phase"] == "Running"
    assert status["containerStatuses"][0]["ready"] is True
    # The probe passed because the model really loaded: ask the pod itself, from the host.
    body = http_json(f"http://{status['podIP']}:8000/health/ready")
    assert body["model_loaded"] is True and body["model_version"]


def test_pod_runs_as_uid_1000_on_a_read_only_root(real_node, server_pod):
    ns = server_pod["metadata"]["namespace"]
    out = real_node.kubectl("exec", "-n", ns, SERVER_POD, "--", "python3", "-c",
                            "import os; print(os.getuid(), os.getgid())").stdout.split()
    assert out == ["1000", "1000"]
    write = real_node.kubectl("exec", "-n", ns, SERVER_POD, "--", "python3", "-c",
                              "open('/opt/probe', 'w')", check=False)
    assert write.returncode != 0
    assert "Read-only file system" in write.stderr + write.stdout
    # /tmp is the pod's emptyDir, writable.
    real_node.kubectl("exec", "-n", ns, SERVER_POD, "--", "python3", "-c", "open('/tmp/probe', 'w')")


def test_restricted_namespace_rejects_a_root_pod(real_node, ns):
    bad = pod("root-pod", real_node.server_image)
    # Root, and the container's capabilities kept (privileged pods are refused even earlier, by
    # the API server's --allow-privileged=false).
    bad["spec"]["securityContext"] = {"runAsUser": 0}
    bad["spec"]["containers"][0]["securityContext"] = {}
    proc = real_node.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert proc.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in proc.stderr
    assert "runAsNonRoot" in proc.stderr


def test_service_answers_on_its_cluster_ip_from_the_host(real_node, server_pod):
    ns = server_pod["metadata"]["namespace"]
    real_node.wait_for_ready_endpoint(ns, "server", server_pod["status"]["podIP"])
    svc = real_node.get_json("service", "server", "-n", ns)
    url = f"http://{svc['spec']['clusterIP']}:80/health/ready"
    # kube-proxy writes its rules a sync period after the EndpointSlice changes; until then it
    # refuses the connection. Anything else (a timeout, a wrong answer) fails at once.
    deadline = time.monotonic() + 30
    while True:
        try:
            body = http_json(url)
            break
        except urllib.error.URLError as exc:
            if not isinstance(exc.reason, ConnectionRefusedError) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    assert body["model_loaded"] is True


def test_pods_resolve_service_names_and_reach_the_api_server(real_node, server_pod):
    ns = server_pod["metadata"]["namespace"]
    script = (
        "import json, ssl, urllib.request\n"
        f"r = json.load(urllib.request.urlopen('http://server.{ns}.svc.cluster.local/health/ready', timeout=10))\n"
        "sa = '/var/run/secrets/kubernetes.io/serviceaccount/'\n"
        "ctx = ssl.create_default_context(cafile=sa + 'ca.crt')\n"
        "req = urllib.request.Request('https://kubernetes.default.svc/version',\n"
        "    headers={'Authorization': 'Bearer ' + open(sa + 'token').read()})\n"
        "v = json.load(urllib.request.urlopen(req, context=ctx, timeout=10))\n"
        "print(json.dumps({'model_loaded': r['model_loaded'], 'api': v['gitVersion']}))\n"
    )
    real_node.apply(pod("client", real_node.server_image, command=["python3", "-c", script], restart="Never"))
    real_node.wait_for_pod(ns, "client", "Succeeded", timeout=180)
    out = json.loads(real_node.kubectl("logs", "-n", ns, "client").stdout.strip().splitlines()[-1])
    assert out == {"model_loaded": True, "api": real_node.node_env["K8S_VERSION"]}


def test_metrics_api_serves_the_node_and_its_pods_over_verified_tls(real_node, server_pod):
    service = real_node.get_json("apiservice", "v1beta1.metrics.k8s.io")
    available = {c["type"]: c["status"] for c in service["status"]["conditions"]}["Available"]
    assert available == "True"
    assert not service["spec"].get("insecureSkipTLSVerify") and service["spec"]["caBundle"]
    command = (real_node.provider_node_dir / "metrics-server.sh").read_text()
    assert "--kubelet-insecure-tls" not in command
    node = json.loads(real_node.kubectl("get", "--raw",
                                        f"/apis/metrics.k8s.io/v1beta1/nodes/{real_node.node_env['NODE_NAME']}").stdout)
    assert node["usage"]["cpu"] and node["usage"]["memory"]
    # A new pod's first sample lands one resolution period (15 s) after the scrape that sees it.
    deadline = time.monotonic() + 120
    while True:
        top = real_node.kubectl("top", "pod", SERVER_POD, "-n", NAMESPACE, "--no-headers", check=False).stdout
        if re.match(rf"{SERVER_POD}\s+\d+m\s+\d+Mi", top):
            break
        assert time.monotonic() < deadline, f"kubectl top pod {SERVER_POD}: {top}"
        time.sleep(3)


def test_down_leaves_no_process_bridge_mount_or_chain(real_node):
    env = real_node.node_env
    pids_dir = pathlib.Path(env["NODE_RUN"]) / "pids"
    pids = [int(p.read_text()) for p in pids_dir.iterdir()] if pids_dir.is_dir() else []
    assert pids, "the node's processes should be running before down"
    subprocess.run(["bash", str(real_node.provider_node_dir / "down.sh")], check=True, timeout=300,
                   capture_output=True)

    alive = [p for p in pids if pathlib.Path(f"/proc/{p}").exists()]
    assert alive == []
    ours = [env["NODE_STATE"], env["NODE_RUN"]]
    leftover_procs = []
    for cmdline in pathlib.Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(path in text for path in ours):
            leftover_procs.append(text)
    assert leftover_procs == []
    assert subprocess.run(["ip", "link", "show", env["NODE_BRIDGE"]], check=False, capture_output=True).returncode != 0
    veths = subprocess.run(["ip", "-o", "link", "show", "type", "veth"], check=False, capture_output=True,
                           text=True).stdout
    assert veths.strip() == ""
    mounts = pathlib.Path("/proc/self/mountinfo").read_text().splitlines()
    assert [m for m in mounts if any(f" {path}" in m for path in ours)] == []
    for save in ("iptables-save", "ip6tables-save"):
        dump = subprocess.run([save], check=False, capture_output=True, text=True).stdout
        assert re.findall(r"^:(?:KUBE|CNI)-\S+", dump, re.MULTILINE) == [], save
    assert list(pathlib.Path("/sys/fs/cgroup").glob("*/kubepods")) == []
    # Idempotent: a second down finds nothing to do and succeeds.
    subprocess.run(["bash", str(real_node.provider_node_dir / "down.sh")], check=True, timeout=120,
                   capture_output=True)
